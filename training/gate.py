"""The quality gate: absolute thresholds, and "not worse than production" on the same rows.

From ``[training.gate]``:

* ``min`` / ``max``: metric -> bound on the candidate's held-out metrics;
* ``compare_metric`` (``''`` = off) and ``tolerance``: the production model is loaded from the
  store and scored on the candidate's held-out rows; the candidate may be worse by at most
  ``tolerance`` (absolute), in the metric's direction (``LOWER_IS_BETTER``). Without a
  production model the comparison passes with a note; a production model with another feature
  schema or task, or that cannot be loaded or scored, fails it with the reason;
* ``[training] examples``: every example must get the answer it expects (a failed example is
  a check of its own, kind ``example``, with expected and actual in its detail).

:func:`judge` is pure (metrics in, verdict out); :func:`score_production` does the store side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy.typing as npt

from model_store import FeatureSpec, ModelStore
from model_store.examples import ExamplesReport
from model_store.manifest import TEXT_DTYPES
from streamscore.config import LOWER_IS_BETTER, GateConfig
from streamscore.exceptions import StreamscoreError
from training.evaluate import evaluate
from training.frames import as_input_for


@dataclass(frozen=True)
class GateCheck:
    """One check and its numbers.

    ``kind`` is ``min``, ``max``, ``compare`` or ``example``. ``value`` is the candidate's
    metric; ``bound`` the limit it was held to (for ``compare``: production's value minus, or
    for lower-is-better metrics plus, the tolerance); ``reference`` production's value.
    Numbers are None when they could not be computed; ``detail`` says why.
    """

    name: str
    kind: str
    metric: str
    passed: bool
    detail: str
    value: float | None = None
    bound: float | None = None
    reference: float | None = None


@dataclass(frozen=True)
class GateVerdict:
    """Every check, whether all passed, and the failed checks' details as ``reasons``."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: list[GateCheck] = field(default_factory=list)

    @classmethod
    def of(cls, checks: Sequence[GateCheck]) -> GateVerdict:
        reasons = [c.detail for c in checks if not c.passed]
        return cls(passed=not reasons, reasons=reasons, checks=list(checks))

    def summary(self) -> str:
        if not self.passed:
            return "; ".join(self.reasons)
        if not self.checks:
            return "passed (no checks configured)"
        return "passed: " + "; ".join(c.detail for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "checks": [asdict(c) for c in self.checks],
        }


@dataclass(frozen=True)
class ProductionScore:
    """The production model measured on the candidate's held-out rows.

    ``metrics`` is None when it could not be measured; ``problem`` then says why.
    """

    version: int
    metrics: dict[str, float] | None
    problem: str = ""

    @property
    def label(self) -> str:
        return f"production v{self.version}"


def judge(
    gate: GateConfig,
    metrics: dict[str, float],
    *,
    production: ProductionScore | None = None,
    examples: ExamplesReport | None = None,
) -> GateVerdict:
    """The verdict on a candidate's held-out ``metrics``.

    ``production`` is production's score on the same rows, None when there is no production
    model (the comparison, if configured, then passes with a note). ``examples`` is the
    candidate's report on ``[training] examples``, None when none are configured.
    """
    checks: list[GateCheck] = []
    for metric, bound in sorted(gate.min.items()):
        checks.append(_threshold("min", metric, metrics.get(metric), bound))
    for metric, bound in sorted(gate.max.items()):
        checks.append(_threshold("max", metric, metrics.get(metric), bound))
    if gate.compare_metric:
        checks.append(_compare(gate.compare_metric, gate.tolerance, metrics, production))
    if examples is not None:
        checks.extend(_examples(examples))
    return GateVerdict.of(checks)


def _examples(report: ExamplesReport) -> list[GateCheck]:
    failed = report.failures
    if not failed:
        n = len(report.results)
        return [GateCheck("examples", "example", "", True, f"{n} of {n} examples passed")]
    return [
        GateCheck(f"example {r.example.label}", "example", "", False, r.describe()) for r in failed
    ]


def _threshold(kind: str, metric: str, value: float | None, bound: float) -> GateCheck:
    name = f"{kind} {metric}"
    if value is None:
        return GateCheck(name, kind, metric, False, f"{metric} was not computed", None, bound)
    ok = value >= bound if kind == "min" else value <= bound
    relation = (">=" if ok else "<") if kind == "min" else ("<=" if ok else ">")
    return GateCheck(
        name, kind, metric, ok, f"{metric} {value:.4f} {relation} {bound}", value, bound
    )


def _compare(
    metric: str,
    tolerance: float,
    metrics: dict[str, float],
    production: ProductionScore | None,
) -> GateCheck:
    new = metrics.get(metric)
    if production is None:
        return GateCheck(
            f"vs production {metric}",
            "compare",
            metric,
            True,
            f"no production model yet: {metric} comparison skipped",
            new,
        )
    label = production.label
    name = f"vs {label} {metric}"
    if production.metrics is None:
        return GateCheck(
            name,
            "compare",
            metric,
            False,
            f"cannot compare with {label}: {production.problem}",
            new,
        )
    old = production.metrics.get(metric)
    if new is None or old is None:
        who = "the candidate" if new is None else label
        return GateCheck(
            name, "compare", metric, False, f"{metric} was not computed for {who}", new, None, old
        )
    lower = metric in LOWER_IS_BETTER
    bound = old + tolerance if lower else old - tolerance
    ok = new <= bound if lower else new >= bound
    relation = (
        f"{metric} {new:.4f} vs {label} {old:.4f} "
        f"({'lower is better, ' if lower else ''}tolerance {tolerance})"
    )
    detail = relation if ok else f"worse than {label}: {relation}"
    return GateCheck(name, "compare", metric, ok, detail, new, bound, old)


# --------------------------------------------------------------------------- production side


def schema_difference(production: Sequence[FeatureSpec], candidate: Sequence[FeatureSpec]) -> str:
    """How two feature schemas differ, or ``''`` when the same columns in the same order have
    compatible types (numeric dtypes are interchangeable; category is not)."""
    old = [f.name for f in production]
    new = [f.name for f in candidate]
    if old != new:
        missing = [n for n in old if n not in new]
        added = [n for n in new if n not in old]
        parts = []
        if missing:
            parts.append(f"candidate lacks {_names(missing)}")
        if added:
            parts.append(f"candidate adds {_names(added)}")
        if not parts:
            parts.append("same features in another order")
        return f"{len(old)} vs {len(new)} features: " + ", ".join(parts)
    kinds = [
        f"{a.name} {a.dtype} -> {b.dtype}"
        for a, b in zip(production, candidate, strict=True)
        if (a.dtype in TEXT_DTYPES) != (b.dtype in TEXT_DTYPES)
    ]
    return f"feature types differ: {_names(kinds, quote=False)}" if kinds else ""


def _names(items: Sequence[str], *, quote: bool = True, limit: int = 5) -> str:
    shown = [repr(i) if quote else i for i in items[:limit]]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more


def score_production(
    store: ModelStore,
    alias: str,
    *,
    task: str,
    schema: Sequence[FeatureSpec],
    X_test: Any,
    y_test: npt.NDArray[Any],
) -> ProductionScore | None:
    """Load the model behind ``alias`` and measure it on the candidate's held-out rows.

    None when ``alias`` is not set. Problems (unloadable, other task, other schema, scoring
    error) come back as a :class:`ProductionScore` without metrics, so the comparison fails
    with the reason instead of the training run crashing.
    """
    state = store.alias_state(alias)
    if state is None:
        return None
    version = state[0]
    try:
        loaded = store.load(alias)
    except StreamscoreError as exc:
        return ProductionScore(version, None, f"it cannot be loaded ({exc})")
    manifest = loaded.manifest
    version = manifest.version  # the alias may have moved since alias_state
    if manifest.task != task:
        return ProductionScore(
            version, None, f"it is a {manifest.task} model and the candidate a {task} model"
        )
    difference = schema_difference(manifest.features, schema)
    if difference:
        return ProductionScore(
            version, None, f"its feature schema differs from the candidate's ({difference})"
        )
    try:
        rows = as_input_for(loaded.model, X_test, schema)
        metrics = evaluate(loaded.model, rows, y_test, task=task)
    except Exception as exc:  # noqa: BLE001 - any failure of user model code is a gate reason
        return ProductionScore(
            version,
            None,
            f"it failed on the held-out rows ({type(exc).__name__}: {exc})",
        )
    return ProductionScore(version, metrics)
