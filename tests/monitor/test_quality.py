"""Live metrics from joined outcomes, checked against scikit-learn on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    roc_auc_score,
)

from monitor.quality import (
    QualityAggregate,
    binned_auc,
    classification_outcome,
    label_key,
    regression_outcome,
)


def _classifier_rows(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.25, n), 0.0005, 0.9995)
    return y, np.round(p1, 3)  # scores on a 0.001 grid: the histogram AUC is exact there


def _aggregate(y: np.ndarray, p1: np.ndarray) -> QualityAggregate:
    agg = QualityAggregate()
    for label, p in zip(y.tolist(), p1.tolist(), strict=True):
        agg.predictions += 1
        agg.record(
            classification_outcome(
                version=1,
                predicted_at_ms=0,
                classes=["0", "1"],
                predicted=int(p >= 0.5),
                probabilities=[1 - p, p],
                label=label,
            )
        )
    return agg


def test_classifier_metrics_match_scikit_learn() -> None:
    y, p1 = _classifier_rows(0, 2000)
    metrics = _aggregate(y, p1).metrics()
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, p1 >= 0.5))
    assert metrics["log_loss"] == pytest.approx(log_loss(y, p1))
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p1))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p1), abs=1e-9)
    assert metrics["coverage"] == 1.0 and metrics["labelled"] == 2000


def test_aggregates_add_up_to_the_metrics_of_all_rows() -> None:
    y, p1 = _classifier_rows(1, 1000)
    first, second = _aggregate(y[:400], p1[:400]), _aggregate(y[400:], p1[400:])
    first.add(second)
    assert first.metrics() == pytest.approx(_aggregate(y, p1).metrics())


def test_roc_auc_needs_both_classes() -> None:
    y = np.ones(50, dtype=int)
    assert _aggregate(y, np.full(50, 0.8)).metrics()["roc_auc"] is None
    assert binned_auc(np.zeros(10), np.zeros(10)) is None


def test_coverage_is_labelled_over_predictions() -> None:
    y, p1 = _classifier_rows(2, 10)
    agg = _aggregate(y, p1)
    agg.predictions += 30
    assert agg.metrics()["coverage"] == pytest.approx(10 / 40)


def test_label_of_an_unseen_class_counts_as_wrong_with_clipped_log_loss() -> None:
    outcome = classification_outcome(
        version=1,
        predicted_at_ms=0,
        classes=["a", "b"],
        predicted=0,
        probabilities=[0.9, 0.1],
        label="c",
    )
    assert not outcome.correct
    assert outcome.log_loss == pytest.approx(-np.log(1e-15))


def test_regressor_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 2, 500)
    pred = y + rng.normal(0, 1, 500)
    agg = QualityAggregate(task="regression")
    for p, label in zip(pred.tolist(), y.tolist(), strict=True):
        outcome = regression_outcome(version=1, predicted_at_ms=0, predicted=p, label=label)
        assert outcome is not None
        agg.record(outcome)
    metrics = agg.metrics()
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y, pred))
    assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)))
    assert "accuracy" not in metrics


def test_regression_label_that_is_not_a_number_is_unusable() -> None:
    assert regression_outcome(version=1, predicted_at_ms=0, predicted=1.0, label="x") is None


def test_label_key_matches_probability_keys() -> None:
    assert label_key(1) == "1" and label_key(1.0) == "1" and label_key(True) == "1"
    assert label_key("yes") == "yes"


def test_batch_recording_equals_one_by_one() -> None:
    y, p1 = _classifier_rows(4, 500)
    one_by_one = _aggregate(y, p1)
    batch = QualityAggregate()
    batch.predictions = 500
    batch.record_classification_batch(
        predicted=(p1 >= 0.5).astype(np.int64),
        truth=y.astype(np.int64),
        probabilities=np.column_stack([1 - p1, p1]),
    )
    assert batch.metrics() == pytest.approx(one_by_one.metrics())
    assert (batch.positives == one_by_one.positives).all()


def test_batch_recording_of_three_classes_and_unknown_labels() -> None:
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    truth = np.array([0, 2, -1])
    predicted = probabilities.argmax(axis=1)
    batch = QualityAggregate()
    batch.record_classification_batch(predicted=predicted, truth=truth, probabilities=probabilities)
    single = QualityAggregate()
    for row, t, p in zip(probabilities, truth, predicted, strict=True):
        single.record(
            classification_outcome(
                version=1,
                predicted_at_ms=0,
                classes=["a", "b", "c"],
                predicted=int(p),
                probabilities=row.tolist(),
                label=["a", "b", "c"][t] if t >= 0 else "zzz",
            )
        )
    assert batch.metrics() == pytest.approx(single.metrics())
