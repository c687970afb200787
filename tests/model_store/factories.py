"""Small real models and registrations for the model store tests (importable by subprocesses)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from model_store import FeatureSpec, Manifest, ModelStore

MODEL_NAME = "cancer"


@cache
def dataset() -> tuple[np.ndarray, np.ndarray, list[str]]:
    data = load_breast_cancer()
    return data.data, data.target, [n.replace(" ", "_") for n in data.feature_names]


def features() -> list[FeatureSpec]:
    return [FeatureSpec(name, "float") for name in dataset()[2]]


@cache
def classifier(C: float = 1.0) -> Pipeline:
    """Fitted once per C: registering does not change a model, so tests can share it."""
    X, y, _ = dataset()
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000)).fit(X, y)


def register(store: ModelStore, C: float = 1.0, **kwargs: Any) -> Manifest:
    """Register a fitted breast-cancer classifier; ``kwargs`` override register's arguments."""
    args: dict[str, Any] = {
        "task": "classification",
        "features": features(),
        "classes": [0, 1],
        "metrics": {"accuracy": 0.9712, "roc_auc": 0.99451, "f1": 0.97},
        "estimator": f"Pipeline(StandardScaler, LogisticRegression(C={C}))",
    }
    args.update(kwargs)
    return store.register(classifier(C), **args)


def register_regressor(store: ModelStore) -> Manifest:
    X, _, _ = dataset()
    return store.register(
        Ridge().fit(X[:, 1:], X[:, 0]),
        task="regression",
        features=features()[1:],
        classes=None,
        metrics={"rmse": 0.25, "r2": 0.98},
        estimator="Ridge()",
    )


def open_store(root: str, options: dict[str, Any]) -> ModelStore:
    """The store at ``root`` (a folder or ``s3://...``) in another process."""
    location: Path | str = root if root.startswith("s3://") else Path(root)
    return ModelStore(location, MODEL_NAME, lock_timeout_ms=60_000, **options)


def register_in_process(root: str, options: dict[str, Any], count: int, out: Any) -> None:
    """Target of a spawned process: register ``count`` versions, report their numbers."""
    store = open_store(root, options)
    for _ in range(count):
        out.put(register(store).version)


def promote_in_process(
    root: str, options: dict[str, Any], versions: list[int], start: Any, out: Any
) -> None:
    """Target of a spawned process: wait for ``start``, promote each version, report moves."""
    store = open_store(root, options)
    start.wait(60)
    for version in versions:
        event = store.promote(version)
        out.put((event.seq, event.from_version, event.to_version))


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
