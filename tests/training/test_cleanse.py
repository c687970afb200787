"""Cleansing: duplicates, unlabeled rows, numeric text, label types, and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from streamscore.exceptions import TrainingError
from training.cleanse import cleanse


def test_cleanse_drops_duplicate_rows_ignoring_the_id():
    data = pd.DataFrame({"id": ["a", "b", "c"], "x": [1.0, 1.0, 2.0], "target": [0, 0, 1]})
    cleaned, report = cleanse(data, label="target", id_column="id")
    assert cleaned["id"].tolist() == ["a", "c"]
    assert report.duplicates_dropped == 1


def test_cleanse_keeps_rows_that_differ_only_in_the_label():
    data = pd.DataFrame({"x": [1.0, 1.0], "target": [0, 1]})
    cleaned, report = cleanse(data, label="target")
    assert len(cleaned) == 2 and report.duplicates_dropped == 0


def test_cleanse_drops_rows_with_missing_or_blank_labels():
    data = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "target": ["yes", None, "  ", "no"]})
    cleaned, report = cleanse(data, label="target")
    assert cleaned["x"].tolist() == [1.0, 4.0]
    assert report.unlabeled_dropped == 2


def test_cleanse_coerces_numeric_text_with_blanks_and_spaces():
    data = pd.DataFrame({"x": ["1.5", " 2 ", "", None], "target": [0, 1, 0, 1]})
    cleaned, report = cleanse(data, label="target")
    assert cleaned["x"].dtype == np.float64
    assert cleaned["x"].tolist()[:2] == [1.5, 2.0] and cleaned["x"].isna().sum() == 2
    assert report.coerced_columns == ["x"]


def test_cleanse_leaves_real_text_and_keep_text_columns_alone():
    data = pd.DataFrame(
        {"name": ["a", "b", "1"], "zip": ["0101", "0202", "0303"], "target": [0, 1, 0]}
    )
    cleaned, report = cleanse(data, label="target", keep_text={"zip"})
    assert cleaned["name"].tolist() == ["a", "b", "1"]
    assert cleaned["zip"].tolist() == ["0101", "0202", "0303"]
    assert report.coerced_columns == []


def test_cleanse_never_coerces_the_id_column():
    data = pd.DataFrame({"id": ["1", "2"], "x": [1.0, 2.0], "target": [0, 1]})
    cleaned, _ = cleanse(data, label="target", id_column="id")
    assert cleaned["id"].tolist() == ["1", "2"]


def test_cleanse_report_counts_every_step():
    data = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "x": ["1", "1", "2", "3", "4"],
            "target": [0.0, 0.0, np.nan, 1.0, 1.0],
        }
    )
    cleaned, report = cleanse(data, label="target", id_column="id")
    assert report.to_dict() == {
        "rows_in": 5,
        "unlabeled_dropped": 1,
        "duplicates_dropped": 1,
        "coerced_columns": ["x"],
        "label_cast": "float64 -> int64",
        "rows_out": 3,
    }
    assert report.lines() == [
        "rows read: 5",
        "rows without a label dropped: 1",
        "duplicate rows dropped: 1",
        "numeric text coerced in: x",
        "label cast float64 -> int64",
        "rows kept: 3",
    ]
    assert cleaned.index.tolist() == [0, 1, 2]


def test_cleanse_makes_integral_float_labels_ints_for_classification():
    data = pd.DataFrame({"x": [1.0, 2.0, 3.0], "target": [0.0, None, 1.0]})
    cleaned, _ = cleanse(data, label="target", task="classification")
    assert cleaned["target"].dtype == np.int64 and cleaned["target"].tolist() == [0, 1]


def test_cleanse_keeps_text_labels_as_python_strings():
    data = pd.DataFrame({"x": [1.0, 2.0], "target": [" cat", "dog "]})
    cleaned, _ = cleanse(data, label="target")
    assert cleaned["target"].tolist() == ["cat", "dog"]
    assert all(type(v) is str for v in cleaned["target"].to_numpy())


def test_cleanse_regression_label_becomes_float():
    data = pd.DataFrame({"x": [1.0, 2.0], "y": ["3.5", "4"]})
    cleaned, report = cleanse(data, label="y", task="regression")
    assert cleaned["y"].tolist() == [3.5, 4.0] and cleaned["y"].dtype == np.float64
    assert report.label_cast.endswith("-> float64")


def test_cleanse_regression_text_label_is_an_error():
    data = pd.DataFrame({"x": [1.0, 2.0], "y": ["high", "low"]})
    with pytest.raises(TrainingError, match=r"label column 'y' is not numeric.*regression"):
        cleanse(data, label="y", task="regression")


def test_cleanse_missing_label_column_names_it_and_the_columns():
    with pytest.raises(
        TrainingError,
        match=r"label column 'y' is not in the data \(columns: x, target\); set \[training\] "
        r"label_column",
    ):
        cleanse(pd.DataFrame({"x": [1], "target": [0]}), label="y")


def test_cleanse_no_rows_left_is_an_error_with_counts():
    data = pd.DataFrame({"x": [1.0, 2.0], "target": [None, None]})
    with pytest.raises(
        TrainingError, match=r"no rows left after cleansing: 2 read, 2 without a label"
    ):
        cleanse(data, label="target")


def test_cleanse_fractional_classification_label_points_at_regression():
    data = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.5, 1.25, 2.0]})
    with pytest.raises(
        TrainingError,
        match=r"label column 'y' holds fractional numbers \(e.g. 0.5; "
        r"3 distinct values\) but \[training\] task is classification; set task = "
        r"'regression'",
    ):
        cleanse(data, label="y", task="classification")
