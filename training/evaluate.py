"""Held-out split and metrics: the same numbers for the candidate and for production."""

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
    """Train/held-out split, stratified for classification."""
    if task == "classification":
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise TrainingError(
                f"the label has a single class ({classes[0]!r}); a classifier needs at least two"
            )
        stratify = y if counts.min() >= 2 else None
    else:
        stratify = None
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise TrainingError(
            f"cannot split {len(y)} rows with test_size={test_size}: {exc}"
        ) from exc
    return X_train, X_test, y_train, y_test


def evaluate(model: Any, X: Array, y: Array, *, task: str) -> dict[str, float]:
    """Classification: accuracy, f1 (macro for multiclass), roc_auc (ovr), log_loss.
    Regression: rmse, mae, r2."""
    if task == "regression":
        predicted = np.asarray(model.predict(X), dtype=np.float64)
        return {
            "rmse": float(math.sqrt(mean_squared_error(y, predicted))),
            "mae": float(mean_absolute_error(y, predicted)),
            "r2": float(r2_score(y, predicted)),
        }
    predicted = model.predict(X)
    classes = list(getattr(model, "classes_", np.unique(y)))
    binary = len(classes) == 2
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(
            f1_score(y, predicted, average="binary" if binary else "macro", pos_label=classes[-1])
            if binary
            else f1_score(y, predicted, average="macro")
        ),
    }
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        if len(np.unique(y)) == len(classes):
            if binary:
                metrics["roc_auc"] = float(roc_auc_score(y, proba[:, 1]))
            else:
                metrics["roc_auc"] = float(
                    roc_auc_score(y, proba, multi_class="ovr", labels=classes)
                )
        metrics["log_loss"] = float(log_loss(y, proba, labels=classes))
    return metrics
