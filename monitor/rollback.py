"""When the monitor rolls production back, and why: pure logic, no I/O.

:func:`decide` looks at the production version's closed windows (by prediction time) and
returns a :class:`Decision`, with its reason and numbers, whatever it decides:

1. There must be a version to roll back to, the version must not have been rolled back
   automatically before (at most once per version), and the cool-down since the last automatic
   rollback must be over.
2. The newest ``consecutive_windows`` (3) consecutive closed windows with evidence enough are
   judged: each must hold at least ``min_labels_per_window`` (500) labelled predictions and at
   least ``min_coverage`` (50 %) of its predictions labelled. The newest closed windows that
   do not (yet) are passed over as still waiting for their labels, so labels that come later
   than a window's length delay the rule by as much, and do not stop it; a window short of
   evidence among the judged ones holds the rule. Otherwise there is not enough evidence yet.
3. In each of those windows a live metric must be worse than a reference by the margin:
   accuracy lower by more than ``accuracy_margin`` (0.02, absolute), log loss or MAE higher by
   more than ``log_loss_margin`` / ``mae_margin`` (10 %, relative). References: the previous
   version's cumulative live metric (when it had at least ``min_labels_per_window`` labels) and
   the version's own held-out metric from its manifest. The same metric against the same
   reference must be bad in every one of the windows: two bad windows and a good one is no
   rollback.

With ``auto_rollback`` off the decision is ``report`` instead of ``rollback``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROLLBACK = "rollback"
REPORT = "report"  # would roll back, but auto_rollback is off
HOLD = "hold"  # no rollback; the reason says why
FAILED = "failed"  # the rule said roll back but the store did not move (the service's outcome)

#: metric → (margin field of the policy, relative margin?, higher is better?)
_RULES: dict[str, tuple[str, bool, bool]] = {
    "accuracy": ("accuracy_margin", False, True),
    "log_loss": ("log_loss_margin", True, False),
    "mae": ("mae_margin", True, False),
}
_TASK_METRICS = {"classification": ("accuracy", "log_loss"), "regression": ("mae",)}


@dataclass(frozen=True)
class RollbackPolicy:
    """The rule's knobs (``[monitor]`` in config.toml)."""

    auto_rollback: bool = True
    min_labels_per_window: int = 500
    min_coverage: float = 0.5
    consecutive_windows: int = 3
    accuracy_margin: float = 0.02
    log_loss_margin: float = 0.10
    mae_margin: float = 0.10
    cooldown_ms: int = 3_600_000


@dataclass(frozen=True)
class WindowQuality:
    """One window of the production version: its counts and live metrics."""

    start_ms: int
    end_ms: int
    predictions: int
    labelled: int
    metrics: Mapping[str, float | int | None]

    @property
    def coverage(self) -> float:
        return self.labelled / self.predictions if self.predictions else 0.0


@dataclass(frozen=True)
class RollbackInput:
    """Everything :func:`decide` needs, gathered by the service."""

    version: int
    task: str
    previous_version: int | None
    windows: Sequence[WindowQuality]
    held_out: Mapping[str, float] = field(default_factory=dict)
    previous_live: Mapping[str, float | int | None] = field(default_factory=dict)
    previous_labelled: int = 0
    now_ms: int = 0
    last_rollback_ms: int | None = None
    rolled_back_versions: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Decision:
    action: str  # rollback | report | hold
    version: int
    target: int | None
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def rolls_back(self) -> bool:
        return self.action == ROLLBACK


def _fmt(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.2f}"


def _worse(metric: str, live: float, ref: float, policy: RollbackPolicy) -> bool:
    margin_field, relative, higher_better = _RULES[metric]
    margin = float(getattr(policy, margin_field))
    if higher_better:
        return live < ref - (abs(ref) * margin if relative else margin)
    return live > ref + (abs(ref) * margin if relative else margin)


def too_thin(
    w: WindowQuality,
    subject: str,
    min_labels: int,
    min_coverage: float,
    *,
    count_predictions: bool = False,
) -> tuple[str, dict[str, Any]] | None:
    """Why window ``w`` is not evidence enough to judge on, with its numbers: fewer than
    ``min_labels`` labelled predictions, or less than ``min_coverage`` of its predictions
    labelled (``min_labels_per_window`` / ``min_coverage``, for the rollback rule and for the
    candidate rules alike). ``subject`` starts the reason; ``count_predictions`` names the
    window's number of predictions in it. None when the window is evidence enough."""
    if w.labelled < min_labels:
        return (
            f"{subject} has {w.labelled:,} labelled predictions, {min_labels:,} are needed",
            {"window": w.start_ms, "labelled": w.labelled},
        )
    if w.coverage < min_coverage:
        predictions = f"{w.predictions:,} predictions" if count_predictions else "predictions"
        return (
            f"{subject} has {w.coverage:.0%} of its {predictions} labelled, "
            f"{min_coverage:.0%} are needed",
            {"window": w.start_ms, "coverage": w.coverage},
        )
    return None


def decide(policy: RollbackPolicy, given: RollbackInput) -> Decision:
    """The decision for the production version now, with its numbers."""
    v = given.version

    def hold(reason: str, **numbers: Any) -> Decision:
        return Decision(HOLD, v, given.previous_version, reason, numbers)

    if given.previous_version is None:
        return hold(f"v{v} has no earlier version to roll back to")
    if v in given.rolled_back_versions:
        return hold(f"v{v} was rolled back automatically once already; no second time")
    if given.last_rollback_ms is not None:
        since = given.now_ms - given.last_rollback_ms
        if since < policy.cooldown_ms:
            return hold(
                f"cool-down: last automatic rollback {since / 1000:.0f} s ago, "
                f"{policy.cooldown_ms / 1000:.0f} s must pass",
                since_ms=since,
            )
    closed = sorted(
        (w for w in given.windows if w.end_ms <= given.now_ms), key=lambda w: w.start_ms
    )
    n = policy.consecutive_windows
    if len(closed) < n:
        return hold(f"v{v} has {len(closed)} closed window(s), {n} are needed", windows=len(closed))

    def thin(w: WindowQuality) -> tuple[str, dict[str, Any]] | None:
        return too_thin(
            w,
            f"window {w.start_ms} of v{v}",
            policy.min_labels_per_window,
            policy.min_coverage,
            count_predictions=True,
        )

    # The newest closed windows may still be waiting for their labels (labels that come later
    # than a window's length leave them thin for a while): they are passed over, and the
    # ``n`` windows before them are judged, each of which must have evidence enough.
    mature = len(closed)
    while mature and thin(closed[mature - 1]) is not None:
        mature -= 1
    waiting = closed[mature:]
    if mature < n:
        newest = thin(waiting[-1]) if waiting else None
        why = (
            ""
            if newest is None
            else f" before the {len(waiting)} newer one(s) still waiting for labels ({newest[0]})"
        )
        return hold(
            f"v{v} has {mature} closed window(s) with labels enough{why}; {n} are needed",
            windows=mature,
            waiting=[w.start_ms for w in waiting],
        )
    recent = closed[mature - n : mature]
    for w in recent:
        short = thin(w)
        if short is not None:
            return hold(short[0], **short[1])
    labels = sum(w.labelled for w in recent)
    references: list[tuple[str, Mapping[str, Any]]] = []
    if given.previous_labelled >= policy.min_labels_per_window:
        references.append((f"of v{given.previous_version}", given.previous_live))
    references.append((f"held-out of v{v}", given.held_out))
    compared: list[str] = []
    for metric in _TASK_METRICS.get(given.task, ()):
        values = [w.metrics.get(metric) for w in recent]
        if any(x is None for x in values):
            continue
        live = [float(x) for x in values if x is not None]
        mean = sum(x * w.labelled for x, w in zip(live, recent, strict=True)) / labels
        for where, ref_metrics in references:
            ref = ref_metrics.get(metric)
            if ref is None:
                continue
            bad = [_worse(metric, x, float(ref), policy) for x in live]
            text = (
                f"live {metric.replace('_', ' ')} {_fmt(mean)} vs {_fmt(float(ref))} {where} "
                f"over {n} windows of {labels:,} labels"
            )
            numbers = {
                "metric": metric,
                "live": mean,
                "live_per_window": live,
                "reference": float(ref),
                "reference_of": where,
                "labels": labels,
                "labels_per_window": [w.labelled for w in recent],
                "coverage_per_window": [round(w.coverage, 4) for w in recent],
                "windows": [w.start_ms for w in recent],
                "waiting_for_labels": [w.start_ms for w in waiting],
            }
            if all(bad):
                if policy.auto_rollback:
                    return Decision(ROLLBACK, v, given.previous_version, text, numbers)
                return Decision(
                    REPORT, v, given.previous_version, text + " (auto_rollback off)", numbers
                )
            compared.append(f"{text}: {sum(bad)} of {n} windows worse than the margin")
    if not compared:
        return hold(f"v{v}: no live metric to compare with a reference yet", labels=labels)
    return hold("; ".join(compared), labels=labels)
