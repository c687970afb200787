"""Drift of live inputs and predictions against a version's reference profile.

Three layers, cheapest first:

* :class:`BucketCounter` turns one batch into :class:`BucketCounts`: per column, how many values
  fell in each bucket of the profile (one vectorised ``searchsorted`` + ``bincount`` per numeric
  column, one ``unique`` per categorical column). Buckets of a numeric column: the profile's
  value bins, then missing; of a categorical column: its top values, ``other``, missing.
* :class:`BucketCounts` add up, so counts from every batch, every minute and every worker can be
  summed; :meth:`BucketCounts.to_dict` is the small JSON the workers publish per minute.
* :class:`DriftWindow` keeps per-minute counts over a sliding window (default 60 minutes) and,
  once the window holds at least ``min_events`` events (default 500), scores each column:
  PSI (:func:`psi`, epsilon 1e-4) for numeric columns, Jensen-Shannon distance
  (:func:`js_distance`, base 2, in [0, 1]) for categorical columns and predicted classes.
  Levels: ``ok`` below ``warn`` (0.1), ``warn``, ``alert`` from ``alert`` (0.25).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.profile import (
    ColumnProfile,
    NumericProfile,
    Profile,
    category_strings,
    numeric_values,
)

PSI_EPSILON = 1e-4
DEFAULT_WINDOW_MINUTES = 60
DEFAULT_MIN_EVENTS = 500
DEFAULT_WARN = 0.1
DEFAULT_ALERT = 0.25
PREDICTIONS = "__predictions__"


# --------------------------------------------------------------------------- distances


def psi(reference: Any, live: Any, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))`` of two count vectors.

    Both are normalised to proportions; proportions below ``epsilon`` are raised to it, so an
    empty bucket on either side counts as ``epsilon`` instead of making the index infinite.
    """
    p = _proportions(reference)
    q = _proportions(live)
    p = np.maximum(p, epsilon)
    q = np.maximum(q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: Any, live: Any) -> float:
    """Jensen-Shannon distance (square root of the divergence, log base 2): 0 same, 1 disjoint."""
    p = _proportions(reference)
    q = _proportions(live)
    m = (p + q) / 2
    divergence = 0.5 * _kl(p, m) + 0.5 * _kl(q, m)
    return float(math.sqrt(max(divergence, 0.0)))


def _kl(p: np.ndarray, m: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))


def _proportions(counts: Any) -> np.ndarray:
    array = np.asarray(counts, dtype=np.float64)
    total = array.sum()
    if total <= 0:
        raise ValueError("cannot compare an empty distribution (all counts are zero)")
    out: np.ndarray = array / total
    return out


# --------------------------------------------------------------------------- counting


def bucket_numeric(column: Any, edges: np.ndarray) -> np.ndarray:
    """Counts per bucket: ``len(edges) + 1`` value bins (the outer two open), then missing."""
    values = numeric_values(column)
    index = np.searchsorted(edges, values, side="right")
    index[np.isnan(values)] = edges.size + 1
    return np.bincount(index, minlength=edges.size + 2).astype(np.int64)


def bucket_categorical(column: Any, positions: Mapping[str, int]) -> np.ndarray:
    """Counts per bucket: each profiled value, ``other``, then missing."""
    other = len(positions)
    counts = np.zeros(other + 2, dtype=np.int64)
    array = np.asarray(column)
    if array.dtype.kind in "iub":  # class labels as numbers: no per-value Python work
        uniques, found = np.unique(array, return_counts=True)
        for value, count in zip(uniques.tolist(), found.tolist(), strict=True):
            key = str(int(value))
            counts[positions.get(key, other)] += count
        return counts
    text, missing = category_strings(array)
    present = text[~missing]
    if present.size:
        uniques, inverse_counts = np.unique(present.astype(str), return_counts=True)
        for value, count in zip(uniques.tolist(), inverse_counts.tolist(), strict=True):
            counts[positions.get(value, other)] += count
    counts[other + 1] = int(missing.sum())
    return counts


@dataclass
class BucketCounts:
    """Events counted and, per column, counts per bucket. Summable (``+``, :meth:`add`)."""

    events: int = 0
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, other: BucketCounts) -> None:
        self.events += other.events
        for name, counts in other.columns.items():
            mine = self.columns.get(name)
            if mine is None or mine.shape != counts.shape:
                self.columns[name] = counts.astype(np.int64, copy=True)
            else:
                mine += counts

    def __add__(self, other: BucketCounts) -> BucketCounts:
        out = BucketCounts()
        out.add(self)
        out.add(other)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "columns": {name: counts.tolist() for name, counts in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BucketCounts:
        return cls(
            events=int(data["events"]),
            columns={
                str(name): np.asarray(counts, dtype=np.int64)
                for name, counts in dict(data.get("columns") or {}).items()
            },
        )


class BucketCounter:
    """Counts batches against one profile's buckets (built once per model version)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._numeric: dict[str, np.ndarray] = {}
        self._categorical: dict[str, dict[str, int]] = {}

        columns: dict[str, ColumnProfile] = dict(profile.features)
        if profile.predictions is not None:
            columns[PREDICTIONS] = profile.predictions
        for name, column in columns.items():
            if isinstance(column, NumericProfile):
                self._numeric[name] = np.asarray(column.edges, dtype=np.float64)
            else:
                self._categorical[name] = {v: i for i, v in enumerate(column.values)}

    def count(
        self, columns: Mapping[str, Any], predictions: Any | None = None, *, events: int
    ) -> BucketCounts:
        """Bucket counts of one batch of ``events`` rows.

        ``columns`` maps feature name to its values (a numpy column of the batch's feature
        matrix, or a list); a feature absent from ``columns`` counts as missing on every row.
        """
        out = BucketCounts(events=events)
        for name, edges in self._numeric.items():
            if name == PREDICTIONS:
                continue
            column = columns.get(name)
            out.columns[name] = bucket_numeric(
                np.full(events, np.nan) if column is None else column, edges
            )
        for name, positions in self._categorical.items():
            if name == PREDICTIONS:
                continue
            column = columns.get(name)
            out.columns[name] = bucket_categorical(
                np.full(events, None, dtype=object) if column is None else column, positions
            )
        if predictions is not None:
            if PREDICTIONS in self._numeric:
                out.columns[PREDICTIONS] = bucket_numeric(predictions, self._numeric[PREDICTIONS])
            elif PREDICTIONS in self._categorical:
                out.columns[PREDICTIONS] = bucket_categorical(
                    predictions, self._categorical[PREDICTIONS]
                )
        return out


# --------------------------------------------------------------------------- the window


@dataclass(frozen=True)
class DriftScore:
    """One column's drift: ``value`` is None while the window has too few events."""

    column: str
    metric: str  # psi | js
    value: float | None
    level: str  # ok | warn | alert | insufficient


@dataclass(frozen=True)
class DriftReport:
    events: int
    min_events: int
    window_minutes: int
    scores: tuple[DriftScore, ...]

    @property
    def evaluated(self) -> bool:
        return self.events >= self.min_events

    def drifted(self, level: str = "alert") -> list[DriftScore]:
        wanted = ("alert",) if level == "alert" else ("warn", "alert")
        return [s for s in self.scores if s.level in wanted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "min_events": self.min_events,
            "window_minutes": self.window_minutes,
            "scores": [
                {"column": s.column, "metric": s.metric, "value": s.value, "level": s.level}
                for s in self.scores
            ],
        }


class DriftWindow:
    """Per-minute bucket counts over the last ``window_minutes``, scored against a profile."""

    def __init__(
        self,
        profile: Profile,
        *,
        window_minutes: int = DEFAULT_WINDOW_MINUTES,
        min_events: int = DEFAULT_MIN_EVENTS,
        warn: float = DEFAULT_WARN,
        alert: float = DEFAULT_ALERT,
    ) -> None:
        if not 0 < warn <= alert:
            raise ValueError(f"drift thresholds need 0 < warn <= alert (got {warn}, {alert})")
        self.profile = profile
        self.window_minutes = window_minutes
        self.min_events = min_events
        self.warn = warn
        self.alert = alert
        self._minutes: dict[int, BucketCounts] = {}
        self._references: dict[str, tuple[str, np.ndarray]] = {}
        columns: dict[str, ColumnProfile] = dict(profile.features)
        if profile.predictions is not None:
            columns[PREDICTIONS] = profile.predictions
        for name, column in columns.items():
            metric = "psi" if isinstance(column, NumericProfile) else "js"
            self._references[name] = (metric, column.reference())

    def add(self, minute: int, counts: BucketCounts) -> None:
        """Add counts of epoch minute ``minute`` (from one batch or one worker's minute)."""
        self._minutes.setdefault(minute, BucketCounts()).add(counts)

    def totals(self, now_minute: int) -> BucketCounts:
        """Counts of the minutes in ``(now_minute - window_minutes, now_minute]``; older ones
        are dropped."""
        oldest = now_minute - self.window_minutes + 1
        for minute in [m for m in self._minutes if m < oldest]:
            del self._minutes[minute]
        total = BucketCounts()
        for minute, counts in self._minutes.items():
            if minute <= now_minute:
                total.add(counts)
        return total

    def evaluate(self, now_minute: int) -> DriftReport:
        total = self.totals(now_minute)
        scores: list[DriftScore] = []
        for name, (metric, reference) in self._references.items():
            live = total.columns.get(name)
            value: float | None = None
            level = "insufficient"
            if (
                total.events >= self.min_events
                and live is not None
                and live.shape == reference.shape
                and live.sum() > 0
                and reference.sum() > 0
            ):
                value = psi(reference, live) if metric == "psi" else js_distance(reference, live)
                level = "alert" if value >= self.alert else "warn" if value >= self.warn else "ok"
            scores.append(DriftScore(column=name, metric=metric, value=value, level=level))
        return DriftReport(
            events=total.events,
            min_events=self.min_events,
            window_minutes=self.window_minutes,
            scores=tuple(scores),
        )


# --------------------------------------------------------------------------- per minute

MINUTE_MS = 60_000
DRIFT_COUNTS = "drift-counts"


class MinuteCounts:
    """A worker's bucket counts per epoch minute, for one model version.

    :meth:`add` counts a batch into the minute of ``at_ms``; :meth:`drain` hands over the
    minutes that are over (all of them with ``final``) as records for the monitoring topic::

        {"type": "drift-counts", "model": {"name": "fraud", "version": 7}, "minute": 29400000,
         "worker": "host-1/0", "counts": {"events": 812, "columns": {"amount": [..], ...}}}
    """

    def __init__(self, counter: BucketCounter, *, model: str, version: int, worker: str) -> None:
        self.counter = counter
        self.model = model
        self.version = version
        self.worker = worker
        self._minutes: dict[int, BucketCounts] = {}

    def add(
        self, columns: Mapping[str, Any], predictions: Any | None, *, events: int, at_ms: int
    ) -> None:
        self.add_counts(self.counter.count(columns, predictions, events=events), at_ms=at_ms)

    def add_counts(self, counts: BucketCounts, *, at_ms: int) -> None:
        self._minutes.setdefault(at_ms // MINUTE_MS, BucketCounts()).add(counts)

    def drain(self, now_ms: int, *, final: bool = False) -> list[dict[str, Any]]:
        current = now_ms // MINUTE_MS
        done = sorted(m for m in self._minutes if final or m < current)
        return [
            {
                "type": DRIFT_COUNTS,
                "model": {"name": self.model, "version": self.version},
                "minute": minute,
                "worker": self.worker,
                "counts": self._minutes.pop(minute).to_dict(),
            }
            for minute in done
        ]


class FleetDrift:
    """Drift of every version from the per-minute counts all workers publish."""

    def __init__(
        self,
        profile_of: Callable[[int], Profile | None],
        *,
        window_minutes: int = DEFAULT_WINDOW_MINUTES,
        min_events: int = DEFAULT_MIN_EVENTS,
        warn: float = DEFAULT_WARN,
        alert: float = DEFAULT_ALERT,
    ) -> None:
        self.profile_of = profile_of
        self.window_minutes = window_minutes
        self.min_events = min_events
        self.warn = warn
        self.alert = alert
        self._windows: dict[int, DriftWindow | None] = {}

    def add(self, record: Mapping[str, Any]) -> bool:
        """Add one monitoring-topic record; False when it is not usable (no profile, bad)."""
        try:
            version = int(record["model"]["version"])
            minute = int(record["minute"])
            counts = BucketCounts.from_dict(record["counts"])
        except (KeyError, TypeError, ValueError):
            return False
        if version not in self._windows:
            profile = self.profile_of(version)
            self._windows[version] = None if profile is None else self._window(profile)
        window = self._windows[version]
        if window is None:
            return False
        window.add(minute, counts)
        return True

    def _window(self, profile: Profile) -> DriftWindow:
        return DriftWindow(
            profile,
            window_minutes=self.window_minutes,
            min_events=self.min_events,
            warn=self.warn,
            alert=self.alert,
        )

    def evaluate(self, now_ms: int) -> dict[int, DriftReport]:
        minute = now_ms // MINUTE_MS
        return {
            version: window.evaluate(minute)
            for version, window in self._windows.items()
            if window is not None
        }
