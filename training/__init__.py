"""Training: load data, cleanse, fit a Pipeline, evaluate, gate, register, promote.

``train(cfg)`` runs the whole flow under the training lock; each step lives in a module named
for what it does (``data``, ``cleanse``, ``features``, ``pipeline``, ``evaluate``, ``gate``,
``lock``). Scoring code (``worker``, ``model_store``) never imports this package.
"""

from training.demo_data import DemoData, export_demo_data
from training.gate import GateCheck, GateVerdict, ProductionScore, judge
from training.lock import training_lock, training_lock_path
from training.run import GateRefused, TrainResult, train

__all__ = [
    "DemoData",
    "GateCheck",
    "GateRefused",
    "GateVerdict",
    "ProductionScore",
    "TrainResult",
    "export_demo_data",
    "judge",
    "train",
    "training_lock",
    "training_lock_path",
]
