"""Held-out split and metrics: the same rows and numbers for the candidate and for production.

Classification: ``accuracy``; ``f1`` (binary: of the second class, the positive one in
scikit-learn's convention; multiclass: macro average); ``roc_auc`` (binary, or one-vs-rest
for multiclass; needs every class in the held-out rows); ``log_loss`` (needs
``predict_proba``). Regression: ``rmse``, ``mae``, ``r2``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split

from streamscore.exceptions import TrainingError

Array = npt.NDArray[Any]


def split(
    X: Array, y: Array, *, task: str, test_size: float, seed: int
) -> tuple[Array, Array, Array, Array]:
    """``X_train, X_test, y_train, y_test``; stratified by the label for classification.

    Raises :class:`TrainingError` for a single-class label or too few rows to split.
    """
    stratify = None
    if task == "classification":
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise TrainingError(
                f"the label has a single class ({_plain(classes[0])!r} in all {len(y)} rows); "
                f"a classifier needs at least two: check the data or label_column"
            )
        if counts.min() >= 2:
            stratify = y
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise TrainingError(
            f"cannot split {len(y)} rows into training and held-out rows with "
            f"[training] test_size = {test_size}: {exc}"
        ) from exc
    if task == "classification" and len(np.unique(y_train)) < 2:
        raise TrainingError(
            f"the training part of the split has a single class ({len(y_train)} rows); "
            f"more rows of each class, or a different test_size, are needed"
        )
    return X_train, X_test, y_train, y_test


def evaluate(model: Any, X: Array, y: Array, *, task: str) -> dict[str, float]:
    """Metrics of a fitted ``model`` on held-out rows ``X``, ``y`` (see the module doc)."""
    if task == "regression":
        return regression_metrics(y, np.asarray(model.predict(X), dtype=np.float64))
    return classification_metrics(model, X, y)


def regression_metrics(y: Array, predicted: Array) -> dict[str, float]:
    return {
        "rmse": math.sqrt(float(mean_squared_error(y, predicted))),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)),
    }


def classification_metrics(model: Any, X: Array, y: Array) -> dict[str, float]:
    classes = list(model.classes_)
    binary = len(classes) == 2
    predicted = model.predict(X)
    metrics = {"accuracy": float(accuracy_score(y, predicted))}
    if binary:
        metrics["f1"] = float(
            f1_score(y, predicted, pos_label=classes[1], average="binary", zero_division=0.0)
        )
    else:
        metrics["f1"] = float(
            f1_score(y, predicted, labels=classes, average="macro", zero_division=0.0)
        )
    every_class_present = set(np.unique(y).tolist()) == set(_plain_all(classes))
    proba: Array | None = None
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    if every_class_present:
        if proba is not None:
            scores = proba[:, 1] if binary else proba
            metrics["roc_auc"] = float(
                roc_auc_score(y, scores, multi_class="ovr", labels=None if binary else classes)
            )
        elif binary and hasattr(model, "decision_function"):
            decision = np.asarray(model.decision_function(X), dtype=np.float64)
            metrics["roc_auc"] = float(roc_auc_score(y, decision))
    if proba is not None:
        metrics["log_loss"] = float(log_loss(y, proba, labels=classes))
    return metrics


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _plain_all(values: list[Any]) -> list[Any]:
    return [_plain(v) for v in values]
