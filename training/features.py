"""The feature schema, and the numpy matrix the model is fitted on.

The schema is every column except the label, the id column and ``drop_columns``, in file
order. It is recorded in the manifest; the worker builds its input from it, so the matrix built
here for fitting has exactly the worker's layout: a float array when every feature is numeric,
an object array (numbers as floats, categories as strings) when some are categorical.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from model_store import FeatureSpec
from model_store.manifest import TEXT_DTYPES
from streamscore.exceptions import TrainingError

log = logging.getLogger(__name__)

Matrix = npt.NDArray[Any]


def derive_schema(
    frame: pd.DataFrame,
    *,
    label: str,
    id_column: str = "",
    drop: Collection[str] = (),
    categorical: Collection[str] = (),
    free_text: bool = False,
) -> list[FeatureSpec]:
    """Feature specs in column order.

    Numeric columns are ``float`` or ``int`` (``bool`` for booleans) with the training median
    as default (the most common value for booleans); categorical ones are ``category`` with
    their sorted values and the most common as default. Every feature is required; the default
    is what the worker sends for an absent optional feature. With ``free_text`` (a custom
    ``[training] pipeline`` handles its own text) other text columns are ``string`` features.

    Raises :class:`TrainingError` for a categorical column that is not in the data, a column
    without any value, a text column that no transform handles, or no features at all.
    """
    columns = [str(c) for c in frame.columns]
    unknown = [c for c in categorical if c not in columns]
    if unknown:
        raise TrainingError(
            f"[training] categorical_columns names {', '.join(map(repr, unknown))}, not in the "
            f"data (columns: {', '.join(columns[:20])}); fix the name or remove it"
        )
    absent = [c for c in drop if c not in columns]
    if absent:
        log.info("drop_columns not in the data (nothing to drop): %s", ", ".join(absent))
    excluded = {label, id_column, *drop}
    specs: list[FeatureSpec] = []
    empty: list[str] = []
    text: list[str] = []
    for column, name in zip(frame.columns, columns, strict=True):
        if name in excluded:
            continue
        series = frame[column]
        if not series.notna().any():
            empty.append(name)
        elif name in categorical:
            values = series.dropna().astype(str)
            categories = tuple(sorted(values.unique()))
            specs.append(
                FeatureSpec(name, "category", True, str(values.mode().iloc[0]), categories)
            )
        elif pd.api.types.is_bool_dtype(series):
            specs.append(FeatureSpec(name, "bool", True, float(series.mode().iloc[0])))
        elif pd.api.types.is_numeric_dtype(series):
            dtype = "int" if pd.api.types.is_integer_dtype(series) else "float"
            specs.append(FeatureSpec(name, dtype, True, float(series.median())))
        elif free_text:
            values = series.dropna().astype(str)
            specs.append(FeatureSpec(name, "string", True, str(values.mode().iloc[0])))
        else:
            text.append(f"{name!r} ({_non_numeric_example(series)})")
    if empty:
        many = len(empty) > 1
        raise TrainingError(
            f"{'columns' if many else 'column'} {', '.join(map(repr, empty))} "
            f"{'have' if many else 'has'} no value in any row; add {'them' if many else 'it'} "
            f"to [training] drop_columns"
        )
    if text:
        many = len(text) > 1
        raise TrainingError(
            f"{'columns' if many else 'column'} {', '.join(text)} {'are' if many else 'is'} "
            f"not numeric and no transform handles {'them' if many else 'it'}: add "
            f"{'them' if many else 'it'} to [training] categorical_columns (one-hot encoded) "
            f"or to drop_columns, or name a [training] pipeline that handles text"
        )
    if not specs:
        raise TrainingError(
            f"no feature columns: every column is the label ({label!r}), the id ({id_column!r}) "
            f"or in drop_columns"
        )
    return specs


def _non_numeric_example(series: pd.Series) -> str:
    """The first value that is not a number, and how many rows hold non-numbers."""
    values = series.dropna()
    numbers = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
    bad = values[numbers.isna().to_numpy()]
    if bad.empty:  # pragma: no cover - cleanse coerced all-numeric text already
        return f"e.g. {values.iloc[0]!r}"
    return f"e.g. {bad.iloc[0]!r}; {len(bad)} of {len(values)} values are not numbers"


def feature_matrix(frame: pd.DataFrame, schema: Sequence[FeatureSpec]) -> Matrix:
    """The columns of ``schema`` as a numpy array in schema order; missing values are NaN."""
    numeric = [
        frame[f.name].to_numpy(dtype=np.float64, na_value=np.nan)
        for f in schema
        if f.dtype not in TEXT_DTYPES
    ]
    if all(f.dtype not in TEXT_DTYPES for f in schema):
        if not numeric:
            return np.empty((len(frame), 0), dtype=np.float64)
        return np.column_stack(numeric)
    out: Matrix = np.empty((len(frame), len(schema)), dtype=object)
    numbers = iter(numeric)
    for j, spec in enumerate(schema):
        if spec.dtype in TEXT_DTYPES:
            out[:, j] = [np.nan if pd.isna(v) else str(v) for v in frame[spec.name]]
        else:
            out[:, j] = next(numbers).tolist()
    return out
