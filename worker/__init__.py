"""The scoring service: consume events, score them in micro-batches, publish predictions.

``ScoringWorker`` is one consumer-group member; ``Supervisor`` runs several as processes.

Names are imported on first use, so ``python -m worker`` can decide which libraries a worker
process loads before scikit-learn is imported (see :mod:`worker.lean`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.processor import BatchProcessor as BatchProcessor
    from worker.processor import Destinations as Destinations
    from worker.processor import ServingModel as ServingModel
    from worker.service import ScoringWorker as ScoringWorker
    from worker.status import WorkerStatus as WorkerStatus
    from worker.supervisor import Supervisor as Supervisor
    from worker.validation import FeatureMatrixBuilder as FeatureMatrixBuilder
    from worker.validation import ValidationPolicy as ValidationPolicy

_WHERE = {
    "BatchProcessor": "worker.processor",
    "Destinations": "worker.processor",
    "ServingModel": "worker.processor",
    "ScoringWorker": "worker.service",
    "WorkerStatus": "worker.status",
    "Supervisor": "worker.supervisor",
    "FeatureMatrixBuilder": "worker.validation",
    "ValidationPolicy": "worker.validation",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
