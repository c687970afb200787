"""Load the training data (CSV or Parquet) and fingerprint the file it came from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from model_store import DataFingerprint, file_sha256
from streamscore.exceptions import TrainingError

#: File suffix -> reader. Anything else is refused with the list of these.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def load_frame(path: Path) -> pd.DataFrame:
    """Read ``path`` into a DataFrame.

    Raises :class:`TrainingError` naming the file and the fix when it is missing, is a folder,
    has an unknown suffix, is empty or cannot be parsed.
    """
    if not path.exists():
        raise TrainingError(
            f"training data {path} does not exist; set [training] data_path or pass --data PATH "
            f"(`streamscore demo-data` writes the demo set there)"
        )
    if not path.is_file():
        raise TrainingError(f"training data {path} is not a file; point data_path at a file")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise TrainingError(
            f"training data {path}: unknown format {path.suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(sorted(FORMATS))}"
        )
    try:
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise TrainingError(f"training data {path} is empty (no header, no rows)") from None
    except Exception as exc:  # pandas and pyarrow raise many types for unreadable files
        raise TrainingError(
            f"training data {path} cannot be read as {kind}: {type(exc).__name__}: {exc}"
        ) from exc


def fingerprint(path: Path, rows: int) -> DataFingerprint:
    """Which data made the model: absolute path, sha256 of the file, rows read."""
    return DataFingerprint(path=str(path.resolve()), sha256=file_sha256(path), rows=rows)
