"""Cleansing: drop unlabeled and duplicate rows, coerce numeric text, report what happened.

The steps, in order:

1. rows without a label (missing or blank) are dropped;
2. text columns whose every non-blank cell is a number become numeric columns;
3. duplicate rows are dropped (the id column is ignored: the same record exported twice under
   two ids is still one record);
4. the label gets its final type: integral floats become ints for classification (a missing
   label makes pandas read ``0/1`` as ``0.0/1.0``), and must be numeric for regression.

Feature values that stay missing are left to the pipeline's imputer, which travels inside the
artifact, so the worker applies the same rule.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from streamscore.exceptions import TrainingError


@dataclass
class CleanseReport:
    """What cleansing did, with counts."""

    rows_in: int
    unlabeled_dropped: int = 0
    duplicates_dropped: int = 0
    coerced_columns: list[str] = field(default_factory=list)
    label_cast: str = ""  # e.g. "float64 -> int64"; "" when the label kept its type
    rows_out: int = 0

    def lines(self) -> list[str]:
        out = [
            f"rows read: {self.rows_in}",
            f"rows without a label dropped: {self.unlabeled_dropped}",
            f"duplicate rows dropped: {self.duplicates_dropped}",
        ]
        if self.coerced_columns:
            out.append(f"numeric text coerced in: {', '.join(self.coerced_columns)}")
        if self.label_cast:
            out.append(f"label cast {self.label_cast}")
        out.append(f"rows kept: {self.rows_out}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_text(series: pd.Series) -> bool:
    return bool(series.dtype == object or pd.api.types.is_string_dtype(series))


def _blank(series: pd.Series) -> pd.Series:
    """True where a cell is missing or only whitespace."""
    missing = series.isna()
    if _is_text(series):
        missing |= series.astype("string").str.strip().eq("").fillna(True).astype(bool)
    return missing


def _as_numbers(series: pd.Series) -> pd.Series | None:
    """The column as float64 if every non-blank cell is a number, else None."""
    blank = _blank(series)
    if blank.all():
        return None
    text = series.astype("string").str.strip().where(~blank)
    converted = pd.to_numeric(text, errors="coerce").astype("float64")
    if bool((converted.notna() == ~blank).all()):
        return converted
    return None


def cleanse(
    frame: pd.DataFrame,
    *,
    label: str,
    id_column: str = "",
    task: str = "classification",
    keep_text: Collection[str] = (),
) -> tuple[pd.DataFrame, CleanseReport]:
    """Return the cleansed frame (fresh index) and a report.

    ``keep_text`` names columns that stay text (the categorical ones). Raises
    :class:`TrainingError` when the label column is missing, nothing is left, or a regression
    label is not numeric.
    """
    if label not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20])) + (", ..." if frame.shape[1] > 20 else "")
        raise TrainingError(
            f"label column {label!r} is not in the data (columns: {shown or 'none'}); "
            f"set [training] label_column"
        )
    report = CleanseReport(rows_in=len(frame))

    unlabeled = _blank(frame[label])
    frame = frame.loc[~unlabeled].copy()
    report.unlabeled_dropped = int(unlabeled.sum())

    skip = {label, id_column, *keep_text}
    for column in frame.columns:
        if column in skip or not _is_text(frame[column]):
            continue
        converted = _as_numbers(frame[column])
        if converted is not None:
            frame[column] = converted
            report.coerced_columns.append(str(column))

    compare = [c for c in frame.columns if c != id_column]
    before = len(frame)
    frame = frame.drop_duplicates(subset=compare or None)
    report.duplicates_dropped = before - len(frame)

    report.rows_out = len(frame)
    if frame.empty:
        raise TrainingError(
            f"no rows left after cleansing: {report.rows_in} read, "
            f"{report.unlabeled_dropped} without a label in {label!r}, "
            f"{report.duplicates_dropped} duplicates; check the data file and label_column"
        )
    frame[label], report.label_cast = _label_values(frame[label], label=label, task=task)
    return frame.reset_index(drop=True), report


def _label_values(series: pd.Series, *, label: str, task: str) -> tuple[pd.Series, str]:
    before = str(series.dtype)
    if task == "regression":
        numbers = series if pd.api.types.is_numeric_dtype(series) else _as_numbers(series)
        if numbers is None or pd.api.types.is_bool_dtype(numbers):
            examples = [v for v in series.unique()[:3]]
            raise TrainingError(
                f"label column {label!r} is not numeric (e.g. {examples}) but [training] task "
                f"is regression; fix the data or set task = 'classification'"
            )
        numbers = numbers.astype("float64")
        return numbers, "" if before == "float64" else f"{before} -> float64"
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=np.float64)
        if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            return series.astype("int64"), f"{before} -> int64"
        fractional = values[np.isfinite(values) & (values != np.round(values))]
        if len(fractional):
            raise TrainingError(
                f"label column {label!r} holds fractional numbers (e.g. {fractional[0]:g}; "
                f"{len(np.unique(values))} distinct values) but [training] task is "
                f"classification; set task = 'regression' to predict a number"
            )
    if _is_text(series):
        return series.astype("string").str.strip().astype(object), ""
    return series, ""
