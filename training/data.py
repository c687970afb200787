"""Load training data (CSV or Parquet) and fingerprint it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from model_store import DataFingerprint, file_sha256
from streamscore.exceptions import TrainingError

READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def load_frame(path: Path) -> pd.DataFrame:
    """Read ``path`` into a DataFrame; clear errors for a missing file or unknown format."""
    if not path.is_file():
        raise TrainingError(
            f"training data {path} does not exist; set [training] data_path "
            f"(or run `streamscore demo-data` for the demo set)"
        )
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise TrainingError(f"{path}: unknown data format {path.suffix!r}; use .csv or .parquet")
    try:
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:
        raise TrainingError(f"{path}: could not be read as {kind} ({exc})") from exc


def fingerprint(path: Path, rows: int) -> DataFingerprint:
    return DataFingerprint(path=str(path), sha256=file_sha256(path), rows=rows)
