"""Drift counting inside a worker: what the scoring loop calls once per batch.

:class:`WorkerDrift` is made for one model version from its reference profile. Per scored batch,
:meth:`WorkerDrift.observe` counts the feature matrix's columns and the predictions into the
profile's buckets (one vectorised pass per column: 0.7 to 1.2 µs of CPU per event for 30
numeric features, ``python -m bench.drift_cost``; the whole worker with and without it:
``python -m bench --only drift``) and adds them to the current minute.
:meth:`WorkerDrift.drain` hands over finished minutes as records for ``[kafka]
monitoring_topic`` (the monitor sums every worker's), and :meth:`WorkerDrift.scores` gives this
worker's own drift over the sliding window for its ``/metrics``
(``streamscore_feature_drift{feature,model_version}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor.drift import (
    DEFAULT_ALERT,
    DEFAULT_MIN_EVENTS,
    DEFAULT_WARN,
    DEFAULT_WINDOW_MINUTES,
    MINUTE_MS,
    BucketCounter,
    BucketCounts,
    DriftReport,
    DriftWindow,
    MinuteCounts,
)
from monitor.profile import Profile


class WorkerDrift:
    """Per-batch drift counts of one model version in one worker."""

    def __init__(
        self,
        profile: Profile,
        *,
        model: str,
        version: int,
        worker: str,
        feature_names: Sequence[str],
        window_minutes: int = DEFAULT_WINDOW_MINUTES,
        min_events: int = DEFAULT_MIN_EVENTS,
        warn: float = DEFAULT_WARN,
        alert: float = DEFAULT_ALERT,
    ) -> None:
        self.version = version
        self.feature_names = list(feature_names)
        self.minutes = MinuteCounts(
            BucketCounter(profile), model=model, version=version, worker=worker
        )
        self.window = DriftWindow(
            profile, window_minutes=window_minutes, min_events=min_events, warn=warn, alert=alert
        )

    def observe(self, matrix: np.ndarray, predictions: Any, *, at_ms: int) -> None:
        """Count one batch: ``matrix`` rows x features in ``feature_names`` order."""
        rows = int(matrix.shape[0])
        if rows == 0:
            return
        columns = {name: matrix[:, i] for i, name in enumerate(self.feature_names)}
        self.minutes.add(columns, predictions, events=rows, at_ms=at_ms)

    def drain(self, now_ms: int, *, final: bool = False) -> list[dict[str, Any]]:
        """Finished minutes as monitoring-topic records; they also enter this worker's window."""
        records = self.minutes.drain(now_ms, final=final)
        for record in records:
            self.window.add(int(record["minute"]), BucketCounts.from_dict(record["counts"]))
        return records

    def scores(self, now_ms: int) -> DriftReport:
        return self.window.evaluate(now_ms // MINUTE_MS)
