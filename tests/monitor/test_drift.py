"""Drift: PSI and Jensen-Shannon against hand computations, bucket counting, the window."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from monitor.drift import (
    PREDICTIONS,
    BucketCounter,
    BucketCounts,
    DriftWindow,
    bucket_categorical,
    bucket_numeric,
    js_distance,
    psi,
)
from monitor.profile import build_profile


@dataclass(frozen=True)
class Spec:
    name: str
    dtype: str


def test_psi_matches_a_hand_computation() -> None:
    # p = (.5, .5), q = (.8, .2): 0.3 ln 1.6 + (-0.3) ln 0.4
    expected = 0.3 * math.log(1.6) - 0.3 * math.log(0.4)
    assert psi([50, 50], [80, 20]) == pytest.approx(expected)
    assert expected == pytest.approx(0.415888, abs=1e-6)


def test_psi_raises_empty_buckets_to_epsilon() -> None:
    # p = (1, 0 -> 1e-4), q = (.5, .5): -0.5 ln 0.5 + (0.5 - 1e-4) ln(0.5 / 1e-4)
    expected = -0.5 * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert psi([100, 0], [50, 50]) == pytest.approx(expected)
    assert psi([100, 0], [50, 50]) == pytest.approx(4.604319, abs=1e-6)


def test_psi_of_identical_distributions_is_zero() -> None:
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)


def test_js_distance_matches_a_hand_computation() -> None:
    # p = (.5, .5), q = (1, 0), m = (.75, .25), log base 2
    kl_pm = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_qm = math.log2(1 / 0.75)
    expected = math.sqrt(0.5 * kl_pm + 0.5 * kl_qm)
    assert js_distance([5, 5], [7, 0]) == pytest.approx(expected)
    assert expected == pytest.approx(0.557923, abs=1e-6)


def test_js_distance_is_zero_for_equal_and_one_for_disjoint() -> None:
    assert js_distance([1, 3], [2, 6]) == pytest.approx(0.0)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)


def test_psi_refuses_an_empty_distribution() -> None:
    with pytest.raises(ValueError, match="empty"):
        psi([0, 0], [1, 1])


def test_bucket_numeric_uses_open_outer_bins_and_a_missing_bucket() -> None:
    edges = np.array([1.0, 2.0])
    counts = bucket_numeric([-5.0, 1.0, 1.5, 2.0, 99.0, float("nan"), float("inf")], edges)
    # (-inf, 1), [1, 2), [2, +inf), missing
    assert counts.tolist() == [1, 2, 3, 1]


def test_bucket_categorical_counts_other_and_missing() -> None:
    counts = bucket_categorical(["fr", "de", "xx", None, "fr", 1], {"fr": 0, "de": 1, "1": 2})
    assert counts.tolist() == [2, 1, 1, 1, 1]


def test_bucket_counts_add_up_and_round_trip() -> None:
    a = BucketCounts(events=2, columns={"x": np.array([1, 1])})
    b = BucketCounts(events=3, columns={"x": np.array([0, 3]), "y": np.array([3])})
    total = a + b
    assert total.events == 5
    assert total.columns["x"].tolist() == [1, 4] and total.columns["y"].tolist() == [3]
    again = BucketCounts.from_dict(total.to_dict())
    assert again.events == 5 and again.columns["x"].tolist() == [1, 4]


def _training(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    return {
        "amount": rng.normal(100.0, 15.0, rows),
        "age": rng.normal(40.0, 10.0, rows),
        "country": rng.choice(["fr", "de", "it", "es"], rows, p=[0.4, 0.3, 0.2, 0.1]),
    }


SCHEMA = [Spec("amount", "float"), Spec("age", "float"), Spec("country", "category")]


def _window_over(live: dict[str, np.ndarray], predictions: np.ndarray) -> DriftWindow:
    rng = np.random.default_rng(7)
    train = _training(rng, 5000)
    profile = build_profile(train, SCHEMA, predictions=rng.integers(0, 2, 1000))
    counter = BucketCounter(profile)
    window = DriftWindow(profile, window_minutes=60, min_events=500)
    rows = len(predictions)
    for minute, start in enumerate(range(0, rows, 250)):  # one batch of 250 per minute
        batch = {k: v[start : start + 250] for k, v in live.items()}
        counts = counter.count(batch, predictions[start : start + 250], events=len(batch["age"]))
        window.add(minute, counts)
    return window


def test_drift_raised_on_a_shifted_feature() -> None:
    rng = np.random.default_rng(11)
    live = _training(rng, 2000)
    live["amount"] = live["amount"] + 15.0  # one standard deviation
    report = _window_over(live, rng.integers(0, 2, 2000)).evaluate(now_minute=7)
    levels = {s.column: s.level for s in report.scores}
    assert levels["amount"] == "alert"
    assert levels["age"] == "ok" and levels["country"] == "ok" and levels[PREDICTIONS] == "ok"


def test_drift_not_raised_on_a_resample_of_the_training_data() -> None:
    rng = np.random.default_rng(12)
    live = _training(rng, 2000)
    report = _window_over(live, rng.integers(0, 2, 2000)).evaluate(now_minute=7)
    assert report.evaluated
    assert report.drifted("warn") == []
    assert all(s.value is not None and s.value < 0.05 for s in report.scores)


def test_drift_raised_on_a_shifted_category_and_predicted_classes() -> None:
    rng = np.random.default_rng(13)
    live = _training(rng, 2000)
    live["country"] = rng.choice(["fr", "es", "pt"], 2000, p=[0.1, 0.2, 0.7])
    report = _window_over(live, np.ones(2000, dtype=int)).evaluate(now_minute=7)
    levels = {s.column: s.level for s in report.scores}
    assert levels["country"] == "alert"
    assert levels[PREDICTIONS] == "alert"


def test_drift_not_evaluated_below_500_events() -> None:
    rng = np.random.default_rng(14)
    live = _training(rng, 499)
    live["amount"] = live["amount"] + 100.0
    report = _window_over(live, rng.integers(0, 2, 499)).evaluate(now_minute=1)
    assert report.events == 499 and not report.evaluated
    assert all(s.value is None and s.level == "insufficient" for s in report.scores)


def test_drift_window_drops_minutes_older_than_the_window() -> None:
    rng = np.random.default_rng(15)
    live = _training(rng, 2000)  # 8 minutes of 250 events
    window = _window_over(live, rng.integers(0, 2, 2000))
    assert window.evaluate(now_minute=7).events == 2000
    assert window.evaluate(now_minute=62).events == 1250  # minutes 3..7 are in 3..62
    assert window.evaluate(now_minute=66).events == 250  # minute 7 only
    assert window.evaluate(now_minute=67).events == 0


def test_drift_window_counts_a_feature_absent_from_the_batch_as_missing() -> None:
    rng = np.random.default_rng(16)
    profile = build_profile(_training(rng, 1000), SCHEMA)
    counts = BucketCounter(profile).count({"amount": np.ones(10)}, events=10)
    assert counts.columns["age"][-1] == 10
    assert counts.columns["country"][-1] == 10


def test_minute_counts_hand_over_finished_minutes_as_summable_records() -> None:
    from monitor.drift import MinuteCounts

    rng = np.random.default_rng(17)
    profile = build_profile(_training(rng, 1000), SCHEMA)
    minutes = MinuteCounts(BucketCounter(profile), model="m", version=3, worker="w0")
    batch = _training(rng, 100)
    minutes.add(batch, None, events=100, at_ms=60_000 * 5 + 10)
    minutes.add(batch, None, events=100, at_ms=60_000 * 5 + 59_000)
    minutes.add(batch, None, events=100, at_ms=60_000 * 6)
    assert minutes.drain(60_000 * 6 + 1) == [
        {
            "type": "drift-counts",
            "model": {"name": "m", "version": 3},
            "minute": 5,
            "worker": "w0",
            "counts": (
                minutes.counter.count(batch, events=100) + minutes.counter.count(batch, events=100)
            ).to_dict(),
        }
    ]
    assert [r["minute"] for r in minutes.drain(60_000 * 6 + 2, final=True)] == [6]


def test_fleet_drift_sums_the_workers_minutes_per_version() -> None:
    from monitor.drift import FleetDrift, MinuteCounts

    rng = np.random.default_rng(18)
    profile = build_profile(_training(rng, 5000), SCHEMA)
    fleet = FleetDrift(lambda version: profile if version == 3 else None)
    for worker in ("w0", "w1"):
        minutes = MinuteCounts(BucketCounter(profile), model="m", version=3, worker=worker)
        live = _training(rng, 300)
        live["amount"] = live["amount"] + 30.0
        minutes.add(live, None, events=300, at_ms=60_000 * 100)
        for record in minutes.drain(0, final=True):
            assert fleet.add(record)
    assert not fleet.add({"model": {"version": 4}, "minute": 100, "counts": {"events": 1}})
    assert not fleet.add({"nonsense": True})
    report = fleet.evaluate(60_000 * 100)[3]
    assert report.events == 600  # neither worker alone has the 500 events needed
    levels = {s.column: s.level for s in report.scores}
    assert levels["amount"] == "alert" and levels["age"] == "ok"
