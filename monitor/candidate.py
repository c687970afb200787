"""Whether a shadow or a canary should take production's place, or the canary end: pure logic.

:func:`judge` compares a candidate version with production window by window (by prediction
time) and returns a :class:`~monitor.rollback.Decision`, with its reason and numbers, whatever
it decides. A shadow is compared on the same ids (the shadow topic carries production's
prediction of each shadowed event); a canary on the same windows, over the disjoint share of the
ids it scored.

1. The last ``consecutive_windows`` closed windows in which both were scored must each hold, for
   both, at least ``min_labels_per_window`` labelled predictions and ``min_coverage`` of them
   labelled. Otherwise there is not enough evidence yet (``hold``).
2. The metric is accuracy for a classifier (higher is better; margins absolute) and MAE for a
   regressor (lower is better; margins relative to production's).
3. **Promote** when the candidate beats production by more than ``promote_margin`` in every one
   of those windows (``promote`` with ``auto_promote``, else ``report``).
4. **End the canary** (a canary only) when it is worse than production by more than the rollback
   margin (``accuracy_margin`` / ``mae_margin``) in every one of them (``end_canary`` with
   ``auto_end_canary``, else ``report``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitor.rollback import HOLD, REPORT, Decision, WindowQuality, too_thin

PROMOTE = "promote"
END_CANARY = "end_canary"
SHADOW = "shadow"
CANARY = "canary"


@dataclass(frozen=True)
class CandidatePolicy:
    """The rules' knobs (``[monitor]`` in config.toml)."""

    auto_promote: bool = False
    auto_end_canary: bool = False
    promote_margin: float = 0.01
    min_labels_per_window: int = 500
    min_coverage: float = 0.5
    consecutive_windows: int = 3
    accuracy_margin: float = 0.02
    mae_margin: float = 0.10


@dataclass(frozen=True)
class CandidateInput:
    """One candidate against production; windows matched by their start."""

    role: str  # shadow | canary
    version: int
    production_version: int
    task: str
    candidate_windows: Sequence[WindowQuality]
    production_windows: Sequence[WindowQuality]
    now_ms: int = 0


def _fmt(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:,.2f}"


def _better(task: str, cand: float, prod: float, margin: float) -> bool:
    if task == "regression":
        return cand < prod - abs(prod) * margin
    return cand > prod + margin


def _worse(task: str, cand: float, prod: float, margin: float) -> bool:
    if task == "regression":
        return cand > prod + abs(prod) * margin
    return cand < prod - margin


def judge(policy: CandidatePolicy, given: CandidateInput) -> Decision:
    """The decision for one candidate now, with its numbers."""
    v, p, role = given.version, given.production_version, given.role
    what = f"{role} v{v} vs production v{p}"

    def hold(reason: str, **numbers: Any) -> Decision:
        return Decision(HOLD, v, p, f"{what}: {reason}", {"role": role, **numbers})

    if v == p:
        return hold("the candidate is production's version")
    production = {w.start_ms: w for w in given.production_windows if w.end_ms <= given.now_ms}
    paired = sorted(
        (
            (w, production[w.start_ms])
            for w in given.candidate_windows
            if w.end_ms <= given.now_ms and w.start_ms in production
        ),
        key=lambda pair: pair[0].start_ms,
    )
    n = policy.consecutive_windows
    if len(paired) < n:
        return hold(f"{len(paired)} closed window(s) of both, {n} are needed", windows=len(paired))
    recent = paired[-n:]
    for cand, prod in recent:
        for who, w in (("candidate", cand), ("production", prod)):
            subject = f"window {w.start_ms}: {who}"
            thin = too_thin(w, subject, policy.min_labels_per_window, policy.min_coverage)
            if thin is not None:
                return hold(thin[0], **thin[1])
    metric = "mae" if given.task == "regression" else "accuracy"
    theirs = [cand.metrics.get(metric) for cand, _ in recent]
    ours = [prod.metrics.get(metric) for _, prod in recent]
    if any(x is None for x in theirs + ours):
        return hold(f"no {metric} in every window yet")
    cand_values = [float(x) for x in theirs if x is not None]
    prod_values = [float(x) for x in ours if x is not None]
    labels = sum(c.labelled for c, _ in recent)
    numbers: dict[str, Any] = {
        "role": role,
        "metric": metric,
        "candidate_per_window": cand_values,
        "production_per_window": prod_values,
        "labels_per_window": [c.labelled for c, _ in recent],
        "production_labels_per_window": [q.labelled for _, q in recent],
        "windows": [c.start_ms for c, _ in recent],
        "promote_margin": policy.promote_margin,
    }
    mean_c = sum(x * c.labelled for x, (c, _) in zip(cand_values, recent, strict=True)) / labels
    prod_labels = sum(q.labelled for _, q in recent)
    mean_p = (
        sum(x * q.labelled for x, (_, q) in zip(prod_values, recent, strict=True)) / prod_labels
    )
    text = (
        f"{what}: {metric} {_fmt(mean_c)} vs {_fmt(mean_p)} over {n} windows of {labels:,} labels"
    )
    better = [
        _better(given.task, c, q, policy.promote_margin)
        for c, q in zip(cand_values, prod_values, strict=True)
    ]
    if all(better):
        if policy.auto_promote:
            return Decision(PROMOTE, v, p, text + ": better in every window, promoted", numbers)
        return Decision(REPORT, v, p, text + ": better in every window (auto_promote off)", numbers)
    if role == CANARY:
        margin = policy.mae_margin if given.task == "regression" else policy.accuracy_margin
        numbers["end_margin"] = margin
        worse = [
            _worse(given.task, c, q, margin) for c, q in zip(cand_values, prod_values, strict=True)
        ]
        if all(worse):
            if policy.auto_end_canary:
                return Decision(END_CANARY, v, p, text + ": worse in every window, ended", numbers)
            return Decision(
                REPORT, v, p, text + ": worse in every window (auto_end_canary off)", numbers
            )
        return Decision(
            HOLD,
            v,
            p,
            f"{text}: better in {sum(better)} and worse in {sum(worse)} of {n} windows",
            numbers,
        )
    return Decision(HOLD, v, p, f"{text}: better in {sum(better)} of {n} windows", numbers)


__all__ = [
    "CANARY",
    "END_CANARY",
    "PROMOTE",
    "SHADOW",
    "CandidateInput",
    "CandidatePolicy",
    "judge",
]
