"""Training: load data, cleanse, fit a Pipeline, evaluate, gate, register, promote.

``train(cfg)`` runs the whole flow under the training lock; each step lives in a module named
for what it does (``data``, ``cleanse``, ``features``, ``pipeline``, ``evaluate``, ``gate``,
``lock``). Models fitted elsewhere come in through ``import_model`` (``streamscore models
import``) and ``register_fitted`` (notebooks), evaluated and gated the same way. Scoring code
(``worker``, ``model_store``) never imports this package.
"""

from training.demo_data import DemoData, export_demo_data
from training.gate import GateCheck, GateVerdict, ProductionScore, judge
from training.importer import ImportRefused, ImportResult, import_model
from training.lock import training_lock, training_lock_path
from training.notebook import register_fitted
from training.run import GateRefused, TrainResult, train

__all__ = [
    "DemoData",
    "GateCheck",
    "GateRefused",
    "GateVerdict",
    "ImportRefused",
    "ImportResult",
    "ProductionScore",
    "TrainResult",
    "export_demo_data",
    "import_model",
    "judge",
    "register_fitted",
    "train",
    "training_lock",
    "training_lock_path",
]
