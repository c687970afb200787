"""Cleansing: drop duplicates and unlabeled rows, coerce numeric text, report what happened."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from streamscore.exceptions import TrainingError


@dataclass
class CleanseReport:
    rows_in: int
    duplicates_dropped: int = 0
    unlabeled_dropped: int = 0
    coerced_columns: list[str] = field(default_factory=list)
    rows_out: int = 0

    def lines(self) -> list[str]:
        out = [
            f"rows read: {self.rows_in}",
            f"duplicate rows dropped: {self.duplicates_dropped}",
            f"rows without a label dropped: {self.unlabeled_dropped}",
        ]
        if self.coerced_columns:
            out.append(f"numeric text coerced in: {', '.join(self.coerced_columns)}")
        out.append(f"rows kept: {self.rows_out}")
        return out


def cleanse(
    frame: pd.DataFrame, *, label: str, id_column: str, keep_text: set[str] | None = None
) -> tuple[pd.DataFrame, CleanseReport]:
    """Return the cleansed frame and a report. ``keep_text`` columns are not coerced."""
    if label not in frame.columns:
        raise TrainingError(
            f"label column {label!r} is not in the data (columns: "
            f"{', '.join(map(str, frame.columns[:20]))}); set [training] label_column"
        )
    report = CleanseReport(rows_in=len(frame))
    compare = [c for c in frame.columns if c != id_column] or list(frame.columns)
    before = len(frame)
    frame = frame.drop_duplicates(subset=compare)
    report.duplicates_dropped = before - len(frame)
    before = len(frame)
    frame = frame[frame[label].notna()]
    report.unlabeled_dropped = before - len(frame)
    keep_text = keep_text or set()
    frame = frame.copy()
    for column in frame.columns:
        if column in (label, id_column) or column in keep_text:
            continue
        series = frame[column]
        if series.dtype == object or pd.api.types.is_string_dtype(series):
            converted = pd.to_numeric(series, errors="coerce")
            # Coerce only when every non-empty cell is numeric text.
            if converted.notna().sum() == series.notna().sum() and series.notna().any():
                frame[column] = converted
                report.coerced_columns.append(str(column))
    report.rows_out = len(frame)
    if frame.empty:
        raise TrainingError(
            f"no rows left after cleansing ({report.rows_in} read, "
            f"{report.duplicates_dropped} duplicates, {report.unlabeled_dropped} without a label)"
        )
    return frame.reset_index(drop=True), report
