"""One model call per batch; when it raises, bisect to find the rows that make it fail.

Each model gets its input in the form it was fitted on: a model fitted on a DataFrame (it has
``feature_names_in_``, as a ColumnTransformer selecting columns by name does) gets a DataFrame
with those columns, in that order, with the dtypes recorded at registration; any other model
the validated matrix as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from model_store import FeatureSpec, LoadedModel
from model_store.manifest import DEFAULT_FRAME_DTYPES, TEXT_DTYPES
from streamscore.exceptions import ScoringError
from worker.lean import allow_pandas

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchScores:
    """Predictions for the rows that scored, and the rows that did not with the reason."""

    rows: list[int]  # matrix row indices that scored, ascending
    predictions: list[Any]  # JSON-ready labels / values, one per scored row
    probabilities: npt.NDArray[np.float64] | None  # (len(rows), n_classes) for classifiers
    failed: list[tuple[int, str, str]]  # (matrix row, error class, message)


class Scorer:
    """Scores matrices with one loaded model.

    Classifiers with ``predict_proba`` are called once: the prediction is the class with the
    highest probability (``classes_[argmax]``), which is what ``predict`` returns for the
    probabilistic classifiers scikit-learn ships, at half the cost of calling both.
    """

    def __init__(self, loaded: LoadedModel) -> None:
        self.model = loaded.model
        self.manifest = loaded.manifest
        self.is_classifier = loaded.manifest.task == "classification"
        self.use_proba = self.is_classifier and hasattr(self.model, "predict_proba")
        classes = loaded.manifest.classes
        if self.is_classifier and classes is None:
            classes = tuple(_plain(c) for c in getattr(self.model, "classes_", ()))
        self.classes: tuple[Any, ...] = tuple(classes or ())
        self.class_keys: tuple[str, ...] = tuple(str(c) for c in self.classes)
        fitted_on = getattr(self.model, "feature_names_in_", None)
        #: Builds the model's input from a validated matrix (identity for numpy models).
        self.model_input: Callable[[npt.NDArray[Any]], Any] = _identity
        self.input_form = "numpy"
        if fitted_on is not None:
            columns = [str(c) for c in fitted_on]
            manifest = loaded.manifest
            self.model_input = FrameBuilder(manifest.features, columns, manifest.label)
            self.input_form = "dataframe"

    def score(self, matrix: npt.NDArray[Any]) -> BatchScores:
        n = matrix.shape[0]
        if n == 0:
            return BatchScores([], [], None, [])
        try:
            predictions, proba = self._call(matrix)
            return BatchScores(list(range(n)), predictions, proba, [])
        except Exception:  # noqa: BLE001
            return self._bisect(matrix)

    def score_once(self, matrix: npt.NDArray[Any]) -> BatchScores:
        """One model call for the whole matrix, no bisection: raises when the model does (a
        shadow skips such a batch instead of spending calls on finding the rows)."""
        n = matrix.shape[0]
        if n == 0:
            return BatchScores([], [], None, [])
        predictions, proba = self._call(matrix)
        return BatchScores(list(range(n)), predictions, proba, [])

    def _call(self, matrix: npt.NDArray[Any]) -> tuple[list[Any], npt.NDArray[np.float64] | None]:
        X = self.model_input(matrix)
        if self.use_proba:
            proba = np.asarray(self.model.predict_proba(X), dtype=np.float64)
            if proba.shape != (matrix.shape[0], len(self.classes)):
                raise ValueError(
                    f"predict_proba returned shape {proba.shape}, expected "
                    f"({matrix.shape[0]}, {len(self.classes)})"
                )
            winners = proba.argmax(axis=1)
            classes = self.classes
            return [classes[i] for i in winners.tolist()], proba
        raw = self.model.predict(X)
        values = np.asarray(raw)
        if values.shape[:1] != (matrix.shape[0],):
            raise ValueError(f"predict returned shape {values.shape} for {matrix.shape[0]} rows")
        return [_plain(v) for v in values.tolist()], None

    def _bisect(self, matrix: npt.NDArray[Any]) -> BatchScores:
        rows: list[int] = []
        predictions: list[Any] = []
        probas: list[npt.NDArray[np.float64]] = []
        failed: list[tuple[int, str, str]] = []
        stack = [(0, matrix.shape[0])]
        while stack:
            start, stop = stack.pop()
            try:
                preds, proba = self._call(matrix[start:stop])
            except Exception as exc:  # noqa: BLE001
                if stop - start == 1:
                    failed.append((start, type(exc).__name__, str(exc) or repr(exc)))
                else:
                    middle = (start + stop) // 2
                    stack.append((middle, stop))
                    stack.append((start, middle))
                continue
            rows.extend(range(start, stop))
            predictions.extend(preds)
            if proba is not None:
                probas.append(proba)
        order = np.argsort(rows, kind="stable")
        rows_sorted = [rows[i] for i in order]
        preds_sorted = [predictions[i] for i in order]
        proba_all = np.concatenate(probas)[order] if probas else None
        failed.sort()
        return BatchScores(rows_sorted, preds_sorted, proba_all, failed)


class FrameBuilder:
    """Validated matrix (schema order) -> the DataFrame a model fitted on one expects.

    Columns come in the model's ``feature_names_in_`` order with the pandas dtypes recorded at
    registration: numbers as float64 (int64 / bool when the column was one and no value is
    missing), text as object, or ``category`` with the recorded categories. Loading pandas
    here lifts the worker's pandas skip for this process (see :mod:`worker.lean`).
    """

    def __init__(self, features: Sequence[FeatureSpec], columns: Sequence[str], label: str) -> None:
        schema = [f.name for f in features]
        if sorted(schema) != sorted(columns):
            missing = [c for c in columns if c not in schema]
            extra = [n for n in schema if n not in columns]
            raise ScoringError(
                f"model {label} was fitted on the columns {', '.join(map(repr, columns[:8]))}"
                f"{' ...' if len(columns) > 8 else ''} but its schema "
                f"{'lacks ' + ', '.join(map(repr, missing)) if missing else ''}"
                f"{' and ' if missing and extra else ''}"
                f"{'adds ' + ', '.join(map(repr, extra)) if extra else ''}; register it again "
                f"with a schema matching feature_names_in_ (`streamscore models import`)"
            )
        if allow_pandas():
            log.info("pandas loaded in this process: %s was fitted on a DataFrame", label)
        import pandas as pd

        self._pd = pd
        by_name = {f.name: (j, f) for j, f in enumerate(features)}
        self.columns = list(columns)
        self._plan: list[tuple[str, int, str, FeatureSpec]] = []
        for name in columns:
            j, spec = by_name[name]
            self._plan.append((name, j, spec.frame_dtype or DEFAULT_FRAME_DTYPES[spec.dtype], spec))
        self._order = [j for _, j, _, _ in self._plan]
        self._all_float = all(kind == "float64" for _, _, kind, _ in self._plan)
        self._in_order = self._order == list(range(len(self._order)))

    def __call__(self, matrix: npt.NDArray[Any]) -> Any:
        pd = self._pd
        if self._all_float and matrix.dtype == np.float64:
            block = matrix if self._in_order else matrix[:, self._order]
            return pd.DataFrame(block, columns=self.columns, copy=False)
        data = {name: self._column(matrix[:, j], kind, spec) for name, j, kind, spec in self._plan}
        return pd.DataFrame(data, copy=False)

    def _column(self, values: npt.NDArray[Any], kind: str, spec: FeatureSpec) -> Any:
        if kind == "category":
            return self._pd.Categorical(values, categories=list(spec.categories) or None)
        if spec.dtype in TEXT_DTYPES:
            if kind == "object":  # pandas >= 3 would otherwise infer its "str" dtype
                return self._pd.Series(values, dtype=object, copy=False)
            return self._pd.array(values, dtype=kind)  # "str", "string", ...
        numbers = values.astype(np.float64, copy=False)
        if kind in ("float64", "float32") or np.isnan(numbers).any():
            return numbers if kind != "float32" else numbers.astype(np.float32)
        if kind == "bool":
            return numbers != 0.0
        try:
            return numbers.astype(np.dtype(kind))
        except TypeError:  # a pandas extension dtype (Int64, boolean): let pandas build it
            return self._pd.array(numbers, dtype=kind)


def _identity(matrix: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return matrix


def _plain(value: Any) -> Any:
    """numpy scalar → plain Python value (JSON-ready)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
