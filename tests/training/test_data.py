"""Loading training data: CSV and Parquet, and clear errors for what cannot be read."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from streamscore.exceptions import TrainingError
from training.data import fingerprint, load_frame


def test_load_frame_reads_csv(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("id,x,target\na,1.5,0\nb,2.5,1\n")
    frame = load_frame(path)
    assert frame.columns.tolist() == ["id", "x", "target"]
    assert frame["x"].tolist() == [1.5, 2.5]


def test_load_frame_reads_parquet(tmp_path):
    path = tmp_path / "train.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "target": [0, 1]}).to_parquet(path)
    assert load_frame(path)["target"].tolist() == [0, 1]


def test_load_frame_missing_file_names_it_and_the_fix(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(
        TrainingError, match=r"nope\.csv does not exist; set \[training\] data_path"
    ):
        load_frame(path)


def test_load_frame_unknown_extension_lists_the_known_ones(tmp_path):
    path = tmp_path / "train.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(TrainingError, match=r"unknown format '\.xlsx'; use one of .csv, .parquet"):
        load_frame(path)


def test_load_frame_folder_is_refused(tmp_path):
    with pytest.raises(TrainingError, match="is not a file"):
        load_frame(tmp_path)


def test_load_frame_empty_csv_says_so(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(TrainingError, match="is empty"):
        load_frame(path)


def test_load_frame_corrupt_parquet_is_a_training_error(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(TrainingError, match=r"bad\.parquet cannot be read as parquet"):
        load_frame(path)


def test_fingerprint_records_path_sha256_and_rows(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"x,target\n1,0\n")
    data = fingerprint(path, rows=1)
    assert data.path == str(path.resolve())
    assert data.sha256 == hashlib.sha256(b"x,target\n1,0\n").hexdigest()
    assert data.rows == 1
