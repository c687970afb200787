"""Training: load data, cleanse, fit a Pipeline, evaluate, register, gate, promote.

``train(cfg)`` runs the flow; each step lives in a module of its own. Scoring code never
imports this package.
"""

from training.demo_data import DemoData, export_demo_data
from training.gate import GateVerdict, judge
from training.run import TrainResult, train

__all__ = ["DemoData", "GateVerdict", "TrainResult", "export_demo_data", "judge", "train"]
