"""The quality gate: absolute thresholds, and "not worse than production" on the same rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamscore.config import LOWER_IS_BETTER, GateConfig


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass
class GateVerdict:
    passed: bool
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [c.detail for c in self.checks if not c.passed]

    def summary(self) -> str:
        if self.passed:
            return (
                "passed: " + "; ".join(c.detail for c in self.checks) if self.checks else "passed"
            )
        return "; ".join(self.reasons)


def judge(
    gate: GateConfig,
    metrics: dict[str, float],
    *,
    production: dict[str, float] | None = None,
    production_label: str = "production",
    production_problem: str = "",
) -> GateVerdict:
    """Compare ``metrics`` with the gate. ``production`` = production's metrics on the same
    held-out rows (None when there is no production model yet)."""
    checks: list[GateCheck] = []
    for metric, bound in sorted(gate.min.items()):
        value = metrics.get(metric)
        if value is None:
            checks.append(GateCheck(f"min {metric}", False, f"{metric} was not computed"))
        else:
            ok = value >= bound
            checks.append(
                GateCheck(
                    f"min {metric}", ok, f"{metric} {value:.4f} {'>=' if ok else '<'} {bound}"
                )
            )
    for metric, bound in sorted(gate.max.items()):
        value = metrics.get(metric)
        if value is None:
            checks.append(GateCheck(f"max {metric}", False, f"{metric} was not computed"))
        else:
            ok = value <= bound
            checks.append(
                GateCheck(
                    f"max {metric}", ok, f"{metric} {value:.4f} {'<=' if ok else '>'} {bound}"
                )
            )
    metric = gate.compare_metric
    if metric:
        checks.append(
            _compare(
                metric, gate.tolerance, metrics, production, production_label, production_problem
            )
        )
    return GateVerdict(all(c.passed for c in checks), checks)


def _compare(
    metric: str,
    tolerance: float,
    metrics: dict[str, float],
    production: dict[str, float] | None,
    label: str,
    problem: str,
) -> GateCheck:
    name = f"vs {label}"
    if problem:
        return GateCheck(name, False, f"cannot compare with {label}: {problem}")
    if production is None:
        return GateCheck(name, True, "no production model yet: comparison skipped")
    new, old = metrics.get(metric), production.get(metric)
    if new is None or old is None:
        return GateCheck(name, False, f"{metric} missing for the candidate or {label}")
    if metric in LOWER_IS_BETTER:
        ok = new <= old + tolerance
        relation = (
            f"{metric} {new:.4f} vs {label} {old:.4f} (lower is better, tolerance {tolerance})"
        )
    else:
        ok = new >= old - tolerance
        relation = f"{metric} {new:.4f} vs {label} {old:.4f} (tolerance {tolerance})"
    return GateCheck(name, ok, relation if ok else f"worse than {label}: {relation}")


def as_dict(verdict: GateVerdict) -> dict[str, Any]:
    return {
        "passed": verdict.passed,
        "checks": [
            {"name": c.name, "passed": c.passed, "detail": c.detail} for c in verdict.checks
        ],
    }
