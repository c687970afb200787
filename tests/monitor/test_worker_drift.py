"""Drift counting in the worker: per batch, per minute (its cost per event: python -m
bench.drift_cost)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.drift import PREDICTIONS
from monitor.profile import build_profile
from monitor.worker_drift import WorkerDrift


@dataclass(frozen=True)
class Spec:
    name: str
    dtype: str


NAMES = [f"f{i}" for i in range(30)]


def _drift(rng: np.random.Generator) -> WorkerDrift:
    train = rng.normal(size=(5000, 30))
    profile = build_profile(
        {n: train[:, i] for i, n in enumerate(NAMES)},
        [Spec(n, "float") for n in NAMES],
        predictions=rng.integers(0, 2, 1000),
    )
    return WorkerDrift(profile, model="m", version=2, worker="w0", feature_names=NAMES)


def test_worker_drift_publishes_finished_minutes_and_scores_its_window() -> None:
    rng = np.random.default_rng(0)
    drift = _drift(rng)
    minute = 60_000 * 1000
    for _ in range(3):
        batch = rng.normal(size=(300, 30))
        batch[:, 5] += 2.0
        drift.observe(batch, rng.integers(0, 2, 300), at_ms=minute + 5)
    assert drift.drain(minute + 10) == []  # the minute is not over
    records = drift.drain(minute + 60_000)
    assert len(records) == 1 and records[0]["counts"]["events"] == 900
    assert records[0]["model"] == {"name": "m", "version": 2}
    levels = {s.column: s.level for s in drift.scores(minute + 60_000).scores}
    assert levels["f5"] == "alert" and levels["f0"] == "ok" and levels[PREDICTIONS] == "ok"
