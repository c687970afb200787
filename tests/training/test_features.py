"""The feature schema (names, order, types, defaults) and the matrix the model is fitted on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model_store import FeatureSpec
from streamscore.exceptions import TrainingError
from training.features import derive_schema, feature_matrix


def test_schema_is_every_column_but_label_id_and_dropped_in_file_order():
    data = pd.DataFrame(
        {"id": ["a"], "b": [1.5], "note": ["x"], "a": [2], "target": [1], "c": [0.5]}
    )
    schema = derive_schema(data, label="target", id_column="id", drop=["note"])
    assert [f.name for f in schema] == ["b", "a", "c"]


def test_schema_types_and_defaults_come_from_the_training_data():
    data = pd.DataFrame(
        {
            "f": [1.0, 2.0, 10.0, np.nan],
            "i": [1, 2, 3, 4],
            "flag": [True, True, False, True],
            "target": [0, 1, 0, 1],
        }
    )
    schema = derive_schema(data, label="target")
    assert schema == [
        FeatureSpec("f", "float", True, 2.0),
        FeatureSpec("i", "int", True, 2.5),
        FeatureSpec("flag", "bool", True, 1.0),
    ]


def test_schema_categorical_column_records_sorted_categories_and_most_common():
    data = pd.DataFrame({"city": ["Rome", "Oslo", "Rome", None], "target": [0, 1, 0, 1]})
    (spec,) = derive_schema(data, label="target", categorical=["city"])
    assert spec == FeatureSpec("city", "category", True, "Rome", ("Oslo", "Rome"))


def test_schema_text_column_without_transform_says_what_to_do():
    data = pd.DataFrame({"city": ["Oslo", "Rome"], "target": [0, 1]})
    with pytest.raises(
        TrainingError,
        match=r"column 'city' \(e\.g\. 'Oslo'.*is not numeric.*add it to \[training\] "
        r"categorical_columns \(one-hot encoded\) or to drop_columns",
    ):
        derive_schema(data, label="target")


def test_schema_mostly_numeric_column_names_the_bad_value():
    data = pd.DataFrame({"x": ["1", "?", "3"], "y": ["a", "b", "c"], "target": [0, 1, 0]})
    with pytest.raises(TrainingError, match=r"columns 'x' \(e\.g\. '\?'; 1 of 3 values") as err:
        derive_schema(data, label="target")
    assert "'y'" in str(err.value)  # every offending column in one message


def test_schema_column_without_values_must_be_dropped():
    data = pd.DataFrame({"x": [1.0, 2.0], "empty": [np.nan, np.nan], "target": [0, 1]})
    with pytest.raises(
        TrainingError, match=r"column 'empty' has no value in any row.*drop_columns"
    ):
        derive_schema(data, label="target")


def test_schema_unknown_categorical_column_is_an_error():
    data = pd.DataFrame({"x": [1.0], "target": [0]})
    with pytest.raises(TrainingError, match=r"categorical_columns names 'colour', not in the data"):
        derive_schema(data, label="target", categorical=["colour"])


def test_schema_without_features_is_an_error():
    data = pd.DataFrame({"id": ["a"], "target": [0]})
    with pytest.raises(TrainingError, match="no feature columns"):
        derive_schema(data, label="target", id_column="id")


def test_feature_matrix_is_float_in_schema_order_when_all_numeric():
    data = pd.DataFrame({"b": [1, 2], "a": [0.5, np.nan], "flag": [True, False], "target": [0, 1]})
    schema = derive_schema(data, label="target")
    matrix = feature_matrix(data, schema)
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, [[1.0, 0.5, 1.0], [2.0, np.nan, 0.0]])


def test_feature_matrix_is_object_with_strings_and_floats_when_categorical():
    data = pd.DataFrame({"city": ["Oslo", None], "x": [1, 2], "target": [0, 1]})
    schema = derive_schema(data, label="target", categorical=["city"])
    matrix = feature_matrix(data, schema)
    assert matrix.dtype == object
    assert matrix[0].tolist() == ["Oslo", 1.0]
    assert np.isnan(matrix[1, 0]) and type(matrix[1, 1]) is float
