"""Examples with expectations: the corner cases a version must get right before it serves.

A JSON-lines file (``[training] examples``, ``models import --examples``), one example a line:
an ``event`` (what a producer would publish) and what the model must answer for it in
``expect``, exactly one of::

    {"name": "clear benign", "event": {...}, "expect": {"class": 1}}
    {"event": {...}, "expect": {"probability": {"class": 1, "min": 0.9}}}     min and/or max
    {"event": {...}, "expect": {"range": {"min": 0.0, "max": 250.0}}}         regressors
    {"event": {...}, "expect": {"dead_letter": "schema"}}                     schema | predict

``name`` is optional (default ``line N``); blank lines and lines starting with ``#`` are
skipped. The file is stored with the version (:data:`EXAMPLES_FILE`, listed with its sha256 in
the manifest); the gate, ``streamscore models test`` and every worker at load run it through
the same validation and scoring path as the stream (``worker.examples``).

This module only parses the file and judges one answer (:meth:`Expectation.judge`); it scores
nothing itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamscore import jsonio
from streamscore.exceptions import ModelStoreError

EXAMPLES_FILE = "examples.jsonl"
KINDS = ("class", "probability", "range", "dead_letter")
STAGES = ("schema", "predict")


@dataclass(frozen=True)
class Answer:
    """What the scoring path made of one event: a prediction (with class probabilities for a
    classifier), or the dead-letter stage and reason."""

    prediction: Any = None
    probabilities: Mapping[str, float] | None = None
    stage: str = ""  # '' = scored
    reason: str = ""

    def describe(self) -> str:
        if self.stage:
            return f"dead-lettered at stage {self.stage} ({self.reason})"
        text = f"prediction {self.prediction!r}"
        if self.probabilities:
            shown = ", ".join(f"{k}: {v:.4f}" for k, v in self.probabilities.items())
            text += f" (probabilities {shown})"
        return text


@dataclass(frozen=True)
class Expectation:
    """One of :data:`KINDS`. ``value`` is the class (``class``, ``probability``) or the stage
    (``dead_letter``); ``low``/``high`` the bounds (``probability``, ``range``)."""

    kind: str
    value: Any = None
    low: float | None = None
    high: float | None = None

    def describe(self) -> str:
        if self.kind == "class":
            return f"class {self.value!r}"
        if self.kind == "dead_letter":
            return f"dead-lettered at stage {self.value}"
        what = f"P({self.value!r})" if self.kind == "probability" else "prediction"
        return " and ".join(
            f"{what} {op} {bound:g}"
            for op, bound in ((">=", self.low), ("<=", self.high))
            if bound is not None
        )

    def judge(self, answer: Answer) -> bool:
        if self.kind == "dead_letter":
            return bool(answer.stage == self.value)
        if answer.stage:
            return False
        if self.kind == "class":
            return bool(answer.prediction == self.value)
        if self.kind == "probability":
            if answer.probabilities is None:
                return False
            p = answer.probabilities.get(str(self.value))
            return p is not None and _within(p, self.low, self.high)
        number = answer.prediction
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            return False
        return _within(float(number), self.low, self.high)


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


@dataclass(frozen=True)
class Example:
    name: str
    line: int
    event: dict[str, Any]
    expect: Expectation

    @property
    def label(self) -> str:
        return (
            self.name if self.name == f"line {self.line}" else f"{self.name!r} (line {self.line})"
        )


def parse_examples(data: bytes, *, where: str = EXAMPLES_FILE) -> list[Example]:
    """Every example in ``data``; a malformed line is a :class:`ModelStoreError` naming
    ``where``, the line and the fix."""
    out = []
    for number, raw in enumerate(data.splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith(b"#"):
            continue
        try:
            item = jsonio.loads(text)
        except jsonio.JSONDecodeError as exc:
            raise _bad(where, number, f"not valid JSON ({exc})") from exc
        out.append(_example(item, where, number))
    if not out:
        raise ModelStoreError(
            f'{where}: no examples in it; write one JSON object a line with "event" and '
            f'"expect", or do not configure an examples file'
        )
    return out


def read_examples(path: Path) -> tuple[bytes, list[Example]]:
    """A file's bytes (what is stored with the version) and its parsed examples."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelStoreError(f"cannot read the examples file {path}: {exc}") from exc
    return data, parse_examples(data, where=str(path))


def examples_file(path: Path) -> dict[str, bytes]:
    """``register(files=examples_file(path))``: the checked examples file under its stored
    name (for ``models import --examples``)."""
    data, _ = read_examples(path)
    return {EXAMPLES_FILE: data}


def _bad(where: str, line: int, problem: str) -> ModelStoreError:
    return ModelStoreError(
        f"{where}:{line}: {problem}; each line is "
        '{"event": {...}, "expect": {"class": C} | {"probability": {"class": C, "min": p}} | '
        '{"range": {"min": a, "max": b}} | {"dead_letter": "schema"}}'
    )


def _example(item: Any, where: str, line: int) -> Example:
    if not isinstance(item, dict):
        raise _bad(where, line, f"expected a JSON object, got {type(item).__name__}")
    unknown = sorted(set(item) - {"name", "event", "expect"})
    if unknown:
        raise _bad(where, line, f"unknown key {unknown[0]!r}")
    event, expect = item.get("event"), item.get("expect")
    if not isinstance(event, dict):
        raise _bad(where, line, '"event" must be a JSON object')
    if not isinstance(expect, dict) or len(expect) != 1 or next(iter(expect)) not in KINDS:
        raise _bad(where, line, f'"expect" must hold exactly one of {", ".join(KINDS)}')
    name = item.get("name", f"line {line}")
    if not isinstance(name, str) or not name:
        raise _bad(where, line, '"name" must be a non-empty string')
    [(kind, spec)] = expect.items()
    return Example(name, line, event, _expectation(kind, spec, where, line))


def _expectation(kind: str, spec: Any, where: str, line: int) -> Expectation:
    if kind == "class":
        if isinstance(spec, (dict, list)) or spec is None:
            raise _bad(where, line, '"class" must be a class label (a string, number or bool)')
        return Expectation("class", spec)
    if kind == "dead_letter":
        if spec not in STAGES:
            raise _bad(where, line, f'"dead_letter" must be one of {", ".join(STAGES)}')
        return Expectation("dead_letter", spec)
    if not isinstance(spec, dict):
        raise _bad(where, line, f'"{kind}" must be a JSON object with "min" and/or "max"')
    allowed = {"min", "max"} | ({"class"} if kind == "probability" else set())
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise _bad(where, line, f'"{kind}" has unknown key {unknown[0]!r}')
    low, high = (_bound(spec.get(k), kind, k, where, line) for k in ("min", "max"))
    if low is None and high is None:
        raise _bad(where, line, f'"{kind}" needs "min", "max" or both')
    if low is not None and high is not None and low > high:
        raise _bad(where, line, f'"{kind}" has min {low:g} above max {high:g}')
    if kind == "range":
        return Expectation("range", None, low, high)
    if "class" not in spec or isinstance(spec["class"], (dict, list)) or spec["class"] is None:
        raise _bad(where, line, '"probability" needs the "class" it bounds')
    return Expectation("probability", spec["class"], low, high)


def _bound(value: Any, kind: str, key: str, where: str, line: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(where, line, f'"{kind}" {key} must be a finite number, got {value!r}')
    return float(value)


@dataclass(frozen=True)
class ExampleResult:
    example: Example
    passed: bool
    actual: str  # the answer, described

    def describe(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"example {self.example.label}: {verdict}: expected "
            f"{self.example.expect.describe()}, got {self.actual}"
        )


@dataclass(frozen=True)
class ExamplesReport:
    label: str  # the model version they ran on
    results: list[ExampleResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[ExampleResult]:
        return [r for r in self.results if not r.passed]

    def summary(self) -> str:
        failed = self.failures
        if not failed:
            return f"{len(self.results)} of {len(self.results)} examples passed on {self.label}"
        listing = "; ".join(r.describe() for r in failed)
        return f"{len(failed)} of {len(self.results)} examples failed on {self.label}: {listing}"
