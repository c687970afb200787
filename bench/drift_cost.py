"""What drift counting adds to a worker, per event: ``python -m bench.drift_cost``.

Counts batches of 1,000 events x 30 numeric features against a reference profile (what
``monitor.worker_drift.WorkerDrift.observe`` does per batch in the worker) and prints the CPU
time per event beside the budget: 5 % of a worker's ~30 us per event (issue 16), 1.5 us.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from monitor.profile import build_profile
from monitor.worker_drift import WorkerDrift

BUDGET_US = 1.5


@dataclass(frozen=True)
class _Spec:
    name: str
    dtype: str


def measure(features: int = 30, batch: int = 1000, rounds: int = 15) -> float:
    """The best of ``rounds`` (20 batches each) in CPU microseconds per event."""
    rng = np.random.default_rng(1)
    names = [f"f{i}" for i in range(features)]
    train = rng.normal(size=(5000, features))
    profile = build_profile(
        {n: train[:, i] for i, n in enumerate(names)},
        [_Spec(n, "float") for n in names],
        predictions=rng.integers(0, 2, 1000),
    )
    drift = WorkerDrift(profile, model="m", version=1, worker="w0", feature_names=names)
    rows = rng.normal(size=(batch, features))
    predictions = rng.integers(0, 2, batch)
    drift.observe(rows, predictions, at_ms=0)  # warm-up
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(20):
            drift.observe(rows, predictions, at_ms=0)
        best = min(best, (time.process_time() - started) / (20 * batch))
    return best * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.drift_cost", description=__doc__)
    p.add_argument("--features", type=int, default=30)
    p.add_argument("--batch", type=int, default=1000)
    args = p.parse_args(argv)
    us = measure(args.features, args.batch)
    print(f"drift counting: {us:.2f} us/event ({args.features} features, batches of {args.batch})")
    print(f"budget (5 % of ~30 us/event): {BUDGET_US:.2f} us/event -> {us / BUDGET_US:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
