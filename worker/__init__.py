"""The scoring service: consume events, score them in micro-batches, publish predictions.

``ScoringWorker`` is one consumer-group member; ``Supervisor`` runs several as processes.
"""

from worker.processor import BatchProcessor, Destinations, ServingModel
from worker.service import ScoringWorker, WorkerStatus
from worker.supervisor import Supervisor
from worker.validation import FeatureMatrixBuilder, ValidationPolicy

__all__ = [
    "BatchProcessor",
    "Destinations",
    "FeatureMatrixBuilder",
    "ScoringWorker",
    "ServingModel",
    "Supervisor",
    "ValidationPolicy",
    "WorkerStatus",
]
