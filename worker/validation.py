"""Events → one feature matrix in schema order, under a configurable validation policy.

The common case (every event carries every feature as a JSON number) takes a vectorised fast
path: one flat list, one ``set(map(type, ...))`` check, one ``numpy`` conversion. Anything else
falls back to a per-event path that coerces what the policy allows and explains what it rejects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from model_store import FeatureSpec
from model_store.manifest import TEXT_DTYPES
from streamscore.config import WorkerConfig
from streamscore.exceptions import ScoringError

NUMERIC_DTYPES = frozenset({"float", "int", "bool"})
SUPPORTED_DTYPES = NUMERIC_DTYPES | TEXT_DTYPES
#: Known categories shown in an ``unknown_category`` rejection before "and N more".
_SHOWN_CATEGORIES = 10
_FAST_TYPES = frozenset({int, float})


@dataclass(frozen=True)
class ValidationPolicy:
    """What to do with imperfect events. ``reject`` sends the event to the dead-letter topic."""

    missing_feature: str = "reject"  # reject | impute (NaN, for the pipeline's imputer)
    numeric_strings: str = "coerce"  # coerce | reject
    non_finite: str = "reject"  # reject | impute
    extra_fields: str = "ignore"  # ignore | reject
    unknown_category: str = "score"  # score | reject (a category value the model never saw)

    @classmethod
    def from_config(cls, cfg: WorkerConfig) -> ValidationPolicy:
        return cls(
            missing_feature=cfg.missing_feature,
            numeric_strings=cfg.numeric_strings,
            non_finite=cfg.non_finite,
            extra_fields=cfg.extra_fields,
            unknown_category=cfg.unknown_category,
        )


@dataclass(frozen=True)
class BuiltBatch:
    """The matrix of the valid events, which events they were, and why the others failed."""

    matrix: npt.NDArray[Any]
    rows: list[int]  # index into the input list, one per matrix row
    rejected: list[tuple[int, str]]  # (index into the input list, reason)


class _Reject(Exception):
    pass


class FeatureMatrixBuilder:
    """Validates decoded events against a model's feature schema and builds its input matrix."""

    def __init__(
        self,
        features: Sequence[FeatureSpec],
        policy: ValidationPolicy,
        *,
        model_label: str,
        allowed_extra: Sequence[str] = (),
    ) -> None:
        if not features:
            raise ScoringError(f"model {model_label} has an empty feature schema; retrain it")
        unsupported = [f"{f.name}: {f.dtype}" for f in features if f.dtype not in SUPPORTED_DTYPES]
        if unsupported:
            raise ScoringError(
                f"model {model_label} has feature types this worker cannot serve "
                f"({', '.join(unsupported)}); supported: {', '.join(sorted(SUPPORTED_DTYPES))}"
            )
        self.features = tuple(features)
        self.names = [f.name for f in features]
        self.policy = policy
        self.model_label = model_label
        self.numeric_only = all(f.dtype in NUMERIC_DTYPES for f in features)
        self.allowed_keys = frozenset(self.names) | frozenset(allowed_extra)
        self._n = len(self.names)
        self._all_required = all(f.required for f in features)
        #: feature name -> the categories it accepts, when unknown ones are rejected.
        self._known: dict[str, frozenset[str]] = {}
        if policy.unknown_category == "reject":
            self._known = {
                f.name: frozenset(f.categories)
                for f in features
                if f.dtype == "category" and f.categories
            }

    # ------------------------------------------------------------------ public

    def build(self, events: Sequence[Any]) -> BuiltBatch:
        """Validate ``events`` (decoded JSON objects) and build the matrix of the valid ones."""
        if not events:
            return BuiltBatch(self._empty(), [], [])
        if self.numeric_only and self._all_required:
            fast = self._fast_path(events)
            if fast is not None:
                return fast
        return self._slow_path(events)

    def row_from_defaults(self) -> npt.NDArray[Any]:
        """One row made of schema defaults (NaN where none): used to smoke-test a new model."""
        values: list[Any] = []
        for f in self.features:
            if f.dtype in TEXT_DTYPES:
                values.append(f.default if f.default is not None else (f.categories or ("",))[0])
            else:
                values.append(float(f.default) if isinstance(f.default, (int, float)) else 0.0)
        dtype: Any = np.float64 if self.numeric_only else object
        return np.array([values], dtype=dtype)

    # ------------------------------------------------------------------ internals

    def _empty(self) -> npt.NDArray[Any]:
        return np.empty((0, self._n), dtype=np.float64 if self.numeric_only else object)

    def _fast_path(self, events: Sequence[Any]) -> BuiltBatch | None:
        names = self.names
        try:
            flat = [event[name] for event in events for name in names]
        except (KeyError, TypeError):
            return None
        if not set(map(type, flat)) <= _FAST_TYPES:
            return None
        if self.policy.extra_fields == "reject":
            allowed = self.allowed_keys
            if not all(event.keys() <= allowed for event in events):
                return None
        matrix = np.array(flat, dtype=np.float64).reshape(len(events), self._n)
        if not np.isfinite(matrix).all():
            return None
        return BuiltBatch(matrix, list(range(len(events))), [])

    def _slow_path(self, events: Sequence[Any]) -> BuiltBatch:
        rows: list[int] = []
        values: list[list[Any]] = []
        rejected: list[tuple[int, str]] = []
        for index, event in enumerate(events):
            try:
                values.append(self._row(event))
                rows.append(index)
            except _Reject as exc:
                rejected.append((index, str(exc)))
        if not values:
            return BuiltBatch(self._empty(), [], rejected)
        dtype: Any = np.float64 if self.numeric_only else object
        return BuiltBatch(np.array(values, dtype=dtype), rows, rejected)

    def _row(self, event: Any) -> list[Any]:
        if not isinstance(event, dict):
            raise _Reject(f"expected a JSON object, got {_json_type(event)}")
        policy = self.policy
        if policy.extra_fields == "reject":
            extra = sorted(set(event) - self.allowed_keys)
            if extra:
                shown = ", ".join(f'"{k}"' for k in extra[:5])
                raise _Reject(
                    f"unexpected field(s) {shown} (model {self.model_label} accepts only its "
                    f'{self._n} features; set [worker] extra_fields = "ignore" to allow them)'
                )
        row: list[Any] = []
        for spec in self.features:
            row.append(self._value(spec, event.get(spec.name)))
        return row

    def _value(self, spec: FeatureSpec, raw: Any) -> Any:
        if raw is None:
            if not spec.required:
                return _default(spec)
            if self.policy.missing_feature == "impute":
                return math.nan
            raise _Reject(
                f'feature "{spec.name}" missing (model {self.model_label} requires '
                f"{self._n} features)"
            )
        if spec.dtype in TEXT_DTYPES:
            if isinstance(raw, str):
                value = raw
            elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
                value = str(raw)
            else:
                kind = "category" if spec.dtype == "category" else "text"
                raise _Reject(
                    f'feature "{spec.name}" must be a string {kind}, got {_json_type(raw)}'
                )
            known = self._known.get(spec.name)
            if known is not None and value not in known:
                raise _Reject(self._unknown_category(spec, value))
            return value
        number: float
        if isinstance(raw, bool):
            if spec.dtype != "bool":
                raise _Reject(f'feature "{spec.name}" must be a number, got a boolean')
            number = 1.0 if raw else 0.0
        elif isinstance(raw, (int, float)):
            number = float(raw)
        elif isinstance(raw, str):
            if self.policy.numeric_strings != "coerce":
                raise _Reject(
                    f'feature "{spec.name}" must be a number, got the string {raw[:40]!r} '
                    f'(set [worker] numeric_strings = "coerce" to accept numeric strings)'
                )
            try:
                number = float(raw.strip())
            except ValueError:
                raise _Reject(
                    f'feature "{spec.name}" must be a number, got the string {raw[:40]!r}'
                ) from None
        else:
            raise _Reject(f'feature "{spec.name}" must be a number, got {_json_type(raw)}')
        if not math.isfinite(number):
            if self.policy.non_finite == "impute":
                return math.nan
            raise _Reject(
                f'feature "{spec.name}" is {number} (not finite); set [worker] non_finite = '
                f'"impute" to let the model\'s imputer fill it'
            )
        return number

    def _unknown_category(self, spec: FeatureSpec, value: str) -> str:
        shown = ", ".join(repr(c) for c in spec.categories[:_SHOWN_CATEGORIES])
        more = len(spec.categories) - _SHOWN_CATEGORIES
        if more > 0:
            shown += f" and {more} more"
        return (
            f'feature "{spec.name}" has the unknown category {value[:40]!r} (model '
            f"{self.model_label} knows {len(spec.categories)}: {shown}); set [worker] "
            f'unknown_category = "score" to let the model score it anyway'
        )


def _default(spec: FeatureSpec) -> Any:
    if spec.dtype in TEXT_DTYPES:
        return spec.default
    return float(spec.default) if isinstance(spec.default, (int, float)) else math.nan


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
