"""Models fitted on DataFrames: their schema, their known categories, and their input.

A pipeline from a notebook selects columns by name (a ``ColumnTransformer``) and was fitted on
a DataFrame, so it has ``feature_names_in_``. The worker gives such a model a DataFrame with
those columns in that order and the pandas dtypes recorded in the schema (``frame_dtype``);
:func:`model_input` builds the same input here, so a model is evaluated and gated on exactly
what it will see in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from model_store import FeatureSpec
from model_store.manifest import DEFAULT_FRAME_DTYPES, TEXT_DTYPES
from streamscore.exceptions import TrainingError
from training.features import feature_matrix

#: Encoders whose fitted ``categories_`` are the values a model knows for a text column.
ENCODERS = (OneHotEncoder, OrdinalEncoder)


def fitted_columns(model: Any) -> list[str] | None:
    """The column names the model was fitted on, or None when it was fitted on an array."""
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def schema_from_frame(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    known: Mapping[str, Sequence[str]] | None = None,
) -> list[FeatureSpec]:
    """Feature specs for ``columns`` of ``frame``, each with the pandas dtype it has there.

    Numbers are ``float``/``int`` (median default), booleans ``bool``; a text column is a
    ``category`` when its known values are given in ``known`` (the model's encoder) or it has
    the pandas ``category`` dtype, otherwise free ``string`` text (no category check).
    """
    known = known or {}
    specs: list[FeatureSpec] = []
    for name in columns:
        series = frame[name]
        frame_dtype = str(series.dtype)
        present = series.dropna()
        if isinstance(series.dtype, pd.CategoricalDtype):
            categories = tuple(str(c) for c in series.cat.categories)
            default = str(present.mode().iloc[0]) if len(present) else None
            specs.append(FeatureSpec(name, "category", True, default, categories, frame_dtype))
        elif pd.api.types.is_bool_dtype(series):
            default_b = float(present.mode().iloc[0]) if len(present) else None
            specs.append(FeatureSpec(name, "bool", True, default_b, (), frame_dtype))
        elif pd.api.types.is_numeric_dtype(series):
            dtype = "int" if pd.api.types.is_integer_dtype(series) else "float"
            median = float(present.median()) if len(present) else None
            specs.append(FeatureSpec(name, dtype, True, median, (), frame_dtype))
        else:
            values = present.astype(str)
            default = str(values.mode().iloc[0]) if len(values) else None
            if name in known:
                categories = tuple(str(c) for c in known[name])
                specs.append(FeatureSpec(name, "category", True, default, categories, frame_dtype))
            else:
                specs.append(FeatureSpec(name, "string", True, default, (), frame_dtype))
    return specs


def encoder_categories(model: Any) -> dict[str, tuple[str, ...]]:
    """Column name -> the categories a fitted encoder inside ``model`` knows for it.

    Follows Pipelines and ColumnTransformers whose columns are selected by name (or by position
    with ``feature_names_in_``); an encoder preceded only by imputers in its branch counts.
    Columns it cannot attribute are simply absent.
    """
    out: dict[str, tuple[str, ...]] = {}
    _walk(model, fitted_columns(model), out)
    return out


def _walk(node: Any, columns: list[str] | None, out: dict[str, tuple[str, ...]]) -> None:
    if isinstance(node, Pipeline):
        for _, step in node.steps:
            if step is None or step == "passthrough":
                continue
            _walk(step, columns, out)
            if not _keeps_columns(step):
                return  # later steps see transformed features, not input columns
        return
    if isinstance(node, ColumnTransformer) and hasattr(node, "transformers_"):
        names = fitted_columns(node) or columns
        for _, transformer, selection in node.transformers_:
            if isinstance(transformer, str):
                continue
            selected = _selected(selection, names)
            if selected is not None:
                _walk(transformer, selected, out)
        return
    fitted = isinstance(node, ENCODERS) and hasattr(node, "categories_")
    if fitted and columns is not None and len(node.categories_) == len(columns):
        for name, values in zip(columns, node.categories_, strict=True):
            out[name] = tuple(str(v) for v in values if not _missing(v))


def _keeps_columns(step: Any) -> bool:
    """True for a step whose output columns are its input columns (an imputer)."""
    return isinstance(step, SimpleImputer) and not step.add_indicator


def _selected(selection: Any, names: list[str] | None) -> list[str] | None:
    if isinstance(selection, str):
        return [selection]
    values = list(np.asarray(selection).ravel()) if not callable(selection) else []
    if not values:
        return None
    if all(isinstance(v, str) for v in values):
        return [str(v) for v in values]
    if names is None:
        return None
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return [n for n, keep in zip(names, values, strict=False) if keep]
    try:
        return [names[int(v)] for v in values]
    except (IndexError, TypeError, ValueError):
        return None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def training_frame(frame: pd.DataFrame, schema: Sequence[FeatureSpec]) -> pd.DataFrame:
    """The schema's columns as a DataFrame the way a worker builds it from JSON events:
    text as Python strings in object columns (NaN where missing), numbers as they are."""
    data: dict[str, Any] = {}
    for spec in schema:
        series = frame[spec.name]
        if spec.dtype in TEXT_DTYPES and spec.frame_dtype in ("", "object"):
            data[spec.name] = pd.Series(
                [np.nan if pd.isna(v) else str(v) for v in series], index=frame.index, dtype=object
            )
        else:
            data[spec.name] = series
    return pd.DataFrame(data, index=frame.index)


def schema_frame(frame: pd.DataFrame, schema: Sequence[FeatureSpec]) -> pd.DataFrame:
    """The schema's columns of ``frame`` with the dtypes a worker builds from JSON events (see
    ``worker.scoring.FrameBuilder``): text as ``str`` in object columns (or ``category`` with
    the known categories), numbers in the recorded dtype (float64 where a value is missing)."""
    missing = [s.name for s in schema if s.name not in frame.columns]
    if missing:
        raise TrainingError(f"the data lacks the feature columns {', '.join(map(repr, missing))}")
    data: dict[str, Any] = {}
    for spec in schema:
        series = frame[spec.name]
        kind = spec.frame_dtype or DEFAULT_FRAME_DTYPES[spec.dtype]
        if kind == "category":
            data[spec.name] = pd.Categorical(
                [np.nan if pd.isna(v) else str(v) for v in series],
                categories=list(spec.categories) or None,
            )
        elif spec.dtype in TEXT_DTYPES:
            values = [np.nan if pd.isna(v) else str(v) for v in series]
            if kind == "object":  # pandas >= 3 would infer its "str" dtype for object arrays
                data[spec.name] = pd.Series(values, dtype=object)
            else:
                data[spec.name] = pd.array(values, dtype=kind)
        else:
            numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isnan(numbers).any() or kind.startswith("float"):
                data[spec.name] = numbers.astype(kind if kind.startswith("float") else np.float64)
            elif kind == "bool":
                data[spec.name] = numbers != 0.0
            else:
                data[spec.name] = (
                    pd.array(numbers, dtype=kind) if kind[0].isupper() else (numbers.astype(kind))
                )
    return pd.DataFrame(data)


def model_input(model: Any, frame: pd.DataFrame, schema: Sequence[FeatureSpec]) -> Any:
    """What a worker would pass ``model`` for these rows: a DataFrame in the model's fitted
    column order when it has ``feature_names_in_``, else the schema-ordered numpy matrix."""
    columns = fitted_columns(model)
    if columns is None:
        return feature_matrix(frame, schema)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TrainingError(
            f"the model was fitted on columns the data lacks: {', '.join(map(repr, missing[:10]))}"
        )
    return frame[columns]


def as_input_for(model: Any, X: Any, schema: Sequence[FeatureSpec]) -> Any:
    """Rows held as a DataFrame or as a schema-ordered matrix, in the form ``model`` was
    fitted on (production and a candidate may differ: one numpy pipeline, one notebook's)."""
    columns = fitted_columns(model)
    if isinstance(X, pd.DataFrame):
        return feature_matrix(X, schema) if columns is None else model_input(model, X, schema)
    if columns is None:
        return X
    frame = pd.DataFrame(X, columns=[f.name for f in schema])
    for spec in schema:
        if spec.dtype not in TEXT_DTYPES:
            frame[spec.name] = frame[spec.name].astype(np.float64)
    return model_input(model, frame, schema)
