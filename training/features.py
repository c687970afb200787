"""The feature schema: which columns feed the model, in which order, of which type."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from model_store import FeatureSpec
from streamscore.exceptions import TrainingError


def derive_schema(
    frame: pd.DataFrame,
    *,
    label: str,
    id_column: str,
    drop: Sequence[str] = (),
    categorical: Sequence[str] = (),
) -> list[FeatureSpec]:
    """Every column but the label, id and dropped ones, in file order."""
    excluded = {label, id_column, *drop}
    unknown = [c for c in categorical if c not in frame.columns]
    if unknown:
        raise TrainingError(
            f"[training] categorical_columns names {unknown} which are not in the data"
        )
    specs: list[FeatureSpec] = []
    for column in frame.columns:
        name = str(column)
        if name in excluded:
            continue
        series = frame[column]
        if name in categorical:
            values = sorted({str(v) for v in series.dropna().unique()})
            mode = str(series.mode().iloc[0]) if series.notna().any() else None
            specs.append(FeatureSpec(name, "category", True, mode, tuple(values)))
        elif pd.api.types.is_bool_dtype(series):
            specs.append(FeatureSpec(name, "bool", True, float(series.median())))
        elif pd.api.types.is_numeric_dtype(series):
            dtype = "int" if pd.api.types.is_integer_dtype(series) else "float"
            median = float(series.median()) if series.notna().any() else 0.0
            specs.append(FeatureSpec(name, dtype, True, median))
        else:
            raise TrainingError(
                f"column {name!r} is not numeric (e.g. {series.dropna().iloc[0]!r}) and no "
                f"transform handles it: add it to [training] categorical_columns or "
                f"drop_columns"
            )
    if not specs:
        raise TrainingError("no feature columns left after excluding label, id and drop_columns")
    return specs


def feature_matrix(frame: pd.DataFrame, schema: Sequence[FeatureSpec]) -> npt.NDArray[Any]:
    """The model's input as a numpy array in schema order (what the worker will build)."""
    names = [f.name for f in schema]
    if all(f.dtype != "category" for f in schema):
        numeric: npt.NDArray[Any] = frame[names].to_numpy(dtype=np.float64)
        return numeric
    out: npt.NDArray[Any] = frame[names].astype(object).to_numpy()
    for j, spec in enumerate(schema):
        if spec.dtype == "category":
            out[:, j] = [np.nan if pd.isna(v) else str(v) for v in out[:, j]]
        else:
            out[:, j] = out[:, j].astype(np.float64)
    return out
