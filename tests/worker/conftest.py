"""Fixtures for worker tests: small real models registered in a real temporary store."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from model_store import FeatureSpec, ModelStore
from model_store.artifact import ArtifactPolicy

#: The wrappers below are this module's own types: the stores of these tests trust them, as a
#: team trusts its own transformers with [model_store] trusted_types.
TEST_TYPES = ["tests.worker.conftest.*"]


@dataclass(frozen=True)
class DemoSet:
    names: list[str]
    X: np.ndarray
    y: np.ndarray

    def event(self, i: int, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"id": f"e-{i}"}
        body.update({n: float(v) for n, v in zip(self.names, self.X[i], strict=True)})
        body.update(extra)
        return body


@pytest.fixture(scope="session")
def demo_set() -> DemoSet:
    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    return DemoSet(names, data.data, data.target)


class FailsOnMarker:
    """A model whose predict raises on rows whose first feature equals ``marker``."""

    def __init__(self, inner: Any, marker: float) -> None:
        self.inner = inner
        self.marker = marker
        self.classes_ = inner.classes_

    def _check(self, X: np.ndarray) -> None:
        if (X[:, 0] == self.marker).any():
            raise ValueError(f"cannot score a row with first feature {self.marker}")

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._check(X)
        return self.inner.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check(X)
        return self.inner.predict_proba(X)


class SlowPerRow:
    """A model that takes ``seconds_per_row`` for each row it scores (a heavy ensemble)."""

    def __init__(self, inner: Any, seconds_per_row: float) -> None:
        self.inner = inner
        self.seconds_per_row = seconds_per_row
        self.classes_ = inner.classes_

    def predict(self, X: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds_per_row * len(X))
        return self.inner.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds_per_row * len(X))
        return self.inner.predict_proba(X)


class SlowsDownAfter:
    """A model fast for its first ``fast_rows`` rows, then ``seconds_per_row`` for each row (a
    model whose cost changes under the worker: a cold cache, a noisy neighbour)."""

    def __init__(self, inner: Any, fast_rows: int, seconds_per_row: float) -> None:
        self.inner = inner
        self.fast_rows = fast_rows
        self.seconds_per_row = seconds_per_row
        self.classes_ = inner.classes_
        self.rows = 0

    def _wait(self, X: np.ndarray) -> None:
        slow = max(0, self.rows + len(X) - self.fast_rows) - max(0, self.rows - self.fast_rows)
        self.rows += len(X)
        time.sleep(self.seconds_per_row * slow)

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._wait(X)
        return self.inner.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._wait(X)
        return self.inner.predict_proba(X)


class FailsOnBatches:
    """A model that scores one row (its smoke test passes) and raises on any larger batch."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.classes_ = inner.classes_

    def _check(self, X: np.ndarray) -> None:
        if len(X) > 1:
            raise RuntimeError(f"this model cannot score {len(X)} rows at once")

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._check(X)
        return self.inner.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check(X)
        return self.inner.predict_proba(X)


class NeedsPandas:
    """A model that imports pandas to predict (as a pipeline with pandas output would)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.classes_ = inner.classes_

    def predict(self, X: np.ndarray) -> np.ndarray:
        import pandas

        return np.asarray(self.inner.predict(pandas.DataFrame(X).to_numpy()))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        import pandas

        return np.asarray(self.inner.predict_proba(pandas.DataFrame(X).to_numpy()))


RegisterFn = Callable[..., Any]


@pytest.fixture
def model_store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models", "demo", policy=ArtifactPolicy(tuple(TEST_TYPES)))


@pytest.fixture
def register(model_store: ModelStore, demo_set: DemoSet) -> RegisterFn:
    """register(C=1.0, promote=True, wrap=None) -> manifest of a fitted logistic regression."""

    def _register(
        C: float = 1.0,
        *,
        promote: bool = True,
        wrap: Callable[[Any], Any] | None = None,
    ) -> Any:
        model: Any = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
        model.fit(demo_set.X, demo_set.y)
        if wrap is not None:
            model = wrap(model)
        features = [FeatureSpec(n, "float") for n in demo_set.names]
        manifest = model_store.register(
            model,
            task="classification",
            features=features,
            classes=[0, 1],
            metrics={"accuracy": 0.97},
            estimator=f"LogisticRegression(C={C})",
        )
        if promote:
            model_store.promote(manifest.version, "production")
        return manifest

    return _register


@pytest.fixture
def register_once(register: RegisterFn, model_store: ModelStore) -> Any:
    """A serving model registered once for a test (hypothesis calls the test many times)."""
    from worker.processor import ServingModel
    from worker.validation import ValidationPolicy

    register()
    loaded = model_store.load("production")
    return ServingModel(
        loaded, ValidationPolicy(), alias="production", seq=1, allowed_extra=("id", "label")
    )
