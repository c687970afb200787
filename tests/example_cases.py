"""Example lines (``[training] examples``) for the breast-cancer models the tests train: one
passing and one failing case of each expectation kind, shared by the gate, ``models test``
and worker tests."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer

#: Rows every model the tests fit classifies with a probability above 0.999.
CLEAR_MALIGNANT = 236  # class 0
CLEAR_BENIGN = 307  # class 1
CLASSIFIER_KINDS = ("class", "probability", "dead_letter")


@cache
def _data() -> tuple[list[str], np.ndarray]:
    data = load_breast_cancer()
    return [n.replace(" ", "_") for n in data.feature_names], data.data


def row_event(index: int, *, drop_first: bool = False) -> dict[str, Any]:
    """Row ``index`` as an event (features named like the stores' schemas)."""
    names, X = _data()
    event = {n: float(v) for n, v in zip(names, X[index], strict=True)}
    if drop_first:
        event.pop(names[0])
    return event


def classifier_case(kind: str, *, passing: bool) -> dict[str, Any]:
    """One example line for a breast-cancer classifier."""
    name = f"{kind} {'passing' if passing else 'failing'}"
    if kind == "class":
        expect: dict[str, Any] = {"class": 0 if passing else 1}
        return {"name": name, "event": row_event(CLEAR_MALIGNANT), "expect": expect}
    if kind == "probability":
        bound = {"class": 1, "min": 0.9} if passing else {"class": 1, "max": 0.1}
        return {"name": name, "event": row_event(CLEAR_BENIGN), "expect": {"probability": bound}}
    if kind == "dead_letter":
        # a lone feature is a schema dead letter; a complete row is scored, so it fails
        event = {"mean_radius": 14.0} if passing else row_event(CLEAR_BENIGN)
        return {"name": name, "event": event, "expect": {"dead_letter": "schema"}}
    raise ValueError(kind)


def range_case(event: dict[str, Any], low: float, high: float, name: str) -> dict[str, Any]:
    return {"name": name, "event": event, "expect": {"range": {"min": low, "max": high}}}


def write_examples(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def register_classifier(
    store: Any, *, files: dict[str, bytes] | None = None, C: float = 0.5
) -> Any:
    """A fitted breast-cancer logistic regression registered in ``store`` with ``files``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from model_store import FeatureSpec

    names, X = _data()
    y = load_breast_cancer().target
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000)).fit(X, y)
    return store.register(
        model,
        task="classification",
        features=[FeatureSpec(n, "float") for n in names],
        classes=[0, 1],
        metrics={},
        estimator=f"LogisticRegression(C={C})",
        files=files,
    )


def register_regressor(store: Any, *, files: dict[str, bytes] | None = None) -> Any:
    """Ridge predicting the first feature (mean radius) from the others."""
    from sklearn.linear_model import Ridge

    from model_store import FeatureSpec

    names, X = _data()
    return store.register(
        Ridge().fit(X[:, 1:], X[:, 0]),
        task="regression",
        features=[FeatureSpec(n, "float") for n in names[1:]],
        classes=None,
        metrics={},
        estimator="Ridge()",
        files=files,
    )


def examples_bytes(*lines: dict[str, Any]) -> dict[str, bytes]:
    """``register(files=...)`` holding these example lines."""
    return {"examples.jsonl": "".join(json.dumps(line) + "\n" for line in lines).encode()}


def radius(index: int) -> float:
    return float(_data()[1][index, 0])
