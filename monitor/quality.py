"""Live quality of one model version over one window: summable aggregates and their metrics.

An :class:`Outcome` is one prediction joined with its label. A :class:`QualityAggregate` holds
sums that add up across outcomes, windows and restarts (so the cumulative metrics of a version
are the sum of its windows), and :meth:`QualityAggregate.metrics` turns them into:

* classifiers: ``accuracy``, ``log_loss`` (probabilities clipped to [1e-15, 1 - 1e-15], as
  scikit-learn does), ``brier`` (binary: ``(p_positive - y)^2``; more classes: the sum over
  classes), ``roc_auc`` for binary models once both classes have labels;
* regressors: ``mae``, ``rmse``;
* both: ``coverage`` = labelled / predictions, with ``predictions`` and ``labelled``.

ROC AUC comes from two 1,000-bin histograms of the positive-class probability (one for each
true class), which keeps the aggregate small and summable: it equals the exact AUC except that
scores within 0.001 of each other count as ties (half a pair).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

AUC_BINS = 1000
LOG_LOSS_EPS = 1e-15
CLASSIFICATION = "classification"
REGRESSION = "regression"


def label_key(value: Any) -> str:
    """A label or class as the string the prediction's ``probabilities`` keys use."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Outcome:
    """One prediction joined with its label."""

    version: int
    predicted_at_ms: int
    task: str
    correct: bool = False
    log_loss: float | None = None
    brier: float | None = None
    positive_score: float | None = None  # binary: probability of the positive class
    is_positive: bool | None = None
    error: float | None = None  # regression: prediction - label


def classification_outcome(
    *,
    version: int,
    predicted_at_ms: int,
    classes: Sequence[str],
    predicted: int,
    probabilities: Sequence[float] | None,
    label: Any,
) -> Outcome:
    """The outcome of a classifier's prediction (``predicted`` indexes ``classes``)."""
    key = label_key(label)
    truth = classes.index(key) if key in classes else -1
    log_loss = brier = positive_score = None
    is_positive: bool | None = None
    if probabilities is not None and len(probabilities) == len(classes):
        p_true = probabilities[truth] if truth >= 0 else 0.0
        log_loss = -math.log(min(max(p_true, LOG_LOSS_EPS), 1 - LOG_LOSS_EPS))
        if len(classes) == 2:
            positive_score = float(probabilities[1])
            is_positive = truth == 1
            brier = (positive_score - (1.0 if is_positive else 0.0)) ** 2
        else:
            brier = sum(
                (p - (1.0 if i == truth else 0.0)) ** 2 for i, p in enumerate(probabilities)
            )
    return Outcome(
        version=version,
        predicted_at_ms=predicted_at_ms,
        task=CLASSIFICATION,
        correct=truth >= 0 and truth == predicted,
        log_loss=log_loss,
        brier=brier,
        positive_score=positive_score,
        is_positive=is_positive,
    )


def regression_outcome(
    *, version: int, predicted_at_ms: int, predicted: float, label: Any
) -> Outcome | None:
    """The outcome of a regressor's prediction; None when the label is not a number."""
    try:
        truth = float(label)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(truth):
        return None
    return Outcome(
        version=version,
        predicted_at_ms=predicted_at_ms,
        task=REGRESSION,
        error=float(predicted) - truth,
    )


def _zeros() -> np.ndarray:
    return np.zeros(AUC_BINS, dtype=np.int64)


@dataclass
class QualityAggregate:
    """Sums over the outcomes of one version in one window (or cumulatively)."""

    task: str = CLASSIFICATION
    predictions: int = 0
    labelled: int = 0
    correct: int = 0
    log_loss_sum: float = 0.0
    log_loss_count: int = 0
    brier_sum: float = 0.0
    brier_count: int = 0
    abs_error_sum: float = 0.0
    squared_error_sum: float = 0.0
    positives: np.ndarray = field(default_factory=_zeros)
    negatives: np.ndarray = field(default_factory=_zeros)

    def record(self, outcome: Outcome) -> None:
        self.task = outcome.task
        self.labelled += 1
        if outcome.task == REGRESSION:
            error = outcome.error or 0.0
            self.abs_error_sum += abs(error)
            self.squared_error_sum += error * error
            return
        self.correct += int(outcome.correct)
        if outcome.log_loss is not None:
            self.log_loss_sum += outcome.log_loss
            self.log_loss_count += 1
        if outcome.brier is not None:
            self.brier_sum += outcome.brier
            self.brier_count += 1
        if outcome.positive_score is not None:
            index = min(int(outcome.positive_score * AUC_BINS), AUC_BINS - 1)
            (self.positives if outcome.is_positive else self.negatives)[max(index, 0)] += 1

    def record_classification_batch(
        self,
        *,
        predicted: np.ndarray,
        truth: np.ndarray,
        probabilities: np.ndarray | None,
    ) -> None:
        """:meth:`record` for many outcomes at once (the same sums, one numpy pass).

        ``predicted`` and ``truth`` are class indices (``truth`` -1: a label of no known class);
        ``probabilities`` is ``rows x classes`` or None when the model gave none.
        """
        self.task = CLASSIFICATION
        rows = int(truth.size)
        self.labelled += rows
        self.correct += int(np.count_nonzero((truth >= 0) & (truth == predicted)))
        if probabilities is None or rows == 0:
            return
        known = truth >= 0
        p_true = np.where(known, probabilities[np.arange(rows), np.maximum(truth, 0)], 0.0)
        losses = -np.log(np.clip(p_true, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS))
        self.log_loss_sum += float(losses.sum())
        self.log_loss_count += rows
        if probabilities.shape[1] == 2:
            positive = probabilities[:, 1]
            is_positive = truth == 1
            self.brier_sum += float(np.sum((positive - is_positive) ** 2))
            bins = np.clip((positive * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)
            self.positives = self.positives + np.bincount(bins[is_positive], minlength=AUC_BINS)
            self.negatives = self.negatives + np.bincount(bins[~is_positive], minlength=AUC_BINS)
        else:
            onehot = np.zeros_like(probabilities)
            onehot[np.arange(rows)[known], truth[known]] = 1.0
            self.brier_sum += float(np.sum((probabilities - onehot) ** 2))
        self.brier_count += rows

    def record_regression_batch(self, errors: np.ndarray) -> None:
        """:meth:`record` for many regression errors (prediction - label) at once."""
        self.task = REGRESSION
        self.labelled += int(errors.size)
        self.abs_error_sum += float(np.abs(errors).sum())
        self.squared_error_sum += float(np.square(errors).sum())

    def add(self, other: QualityAggregate) -> None:
        if other.labelled or other.predictions:
            self.task = other.task
        self.predictions += other.predictions
        self.labelled += other.labelled
        self.correct += other.correct
        self.log_loss_sum += other.log_loss_sum
        self.log_loss_count += other.log_loss_count
        self.brier_sum += other.brier_sum
        self.brier_count += other.brier_count
        self.abs_error_sum += other.abs_error_sum
        self.squared_error_sum += other.squared_error_sum
        self.positives = self.positives + other.positives
        self.negatives = self.negatives + other.negatives

    @property
    def coverage(self) -> float | None:
        return self.labelled / self.predictions if self.predictions else None

    def metrics(self) -> dict[str, float | int | None]:
        """The live metrics (None where undefined: no labels, or one class only for AUC)."""
        out: dict[str, float | int | None] = {
            "predictions": self.predictions,
            "labelled": self.labelled,
            "coverage": self.coverage,
        }
        n = self.labelled
        if self.task == REGRESSION:
            out["mae"] = self.abs_error_sum / n if n else None
            out["rmse"] = math.sqrt(self.squared_error_sum / n) if n else None
            return out
        out["accuracy"] = self.correct / n if n else None
        out["log_loss"] = self.log_loss_sum / self.log_loss_count if self.log_loss_count else None
        out["brier"] = self.brier_sum / self.brier_count if self.brier_count else None
        out["roc_auc"] = binned_auc(self.positives, self.negatives)
        return out

    # ------------------------------------------------------------------ storage

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "predictions": self.predictions,
            "labelled": self.labelled,
            "correct": self.correct,
            "log_loss_sum": self.log_loss_sum,
            "log_loss_count": self.log_loss_count,
            "brier_sum": self.brier_sum,
            "brier_count": self.brier_count,
            "abs_error_sum": self.abs_error_sum,
            "squared_error_sum": self.squared_error_sum,
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        positives: np.ndarray | None = None,
        negatives: np.ndarray | None = None,
    ) -> QualityAggregate:
        out = cls(**{k: data[k] for k in cls().to_dict() if k in data})
        if positives is not None:
            out.positives = positives.astype(np.int64, copy=True)
        if negatives is not None:
            out.negatives = negatives.astype(np.int64, copy=True)
        return out


def binned_auc(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """ROC AUC from score histograms: P(score of a positive > score of a negative), ties 1/2."""
    n_pos = int(positives.sum())
    n_neg = int(negatives.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    negatives_below = np.cumsum(negatives) - negatives
    wins = float(np.sum(positives * negatives_below)) + 0.5 * float(np.sum(positives * negatives))
    return wins / (n_pos * n_neg)
