"""FeatureMatrixBuilder: events in, one matrix in schema order out, reasons for the rest."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_store import FeatureSpec
from streamscore.exceptions import ScoringError
from worker.validation import FeatureMatrixBuilder, ValidationPolicy

FEATURES = [FeatureSpec("a", "float"), FeatureSpec("b", "int"), FeatureSpec("c", "float")]


def builder(policy: ValidationPolicy | None = None, features=FEATURES) -> FeatureMatrixBuilder:
    return FeatureMatrixBuilder(
        features, policy or ValidationPolicy(), model_label="m v1", allowed_extra=("id",)
    )


def test_build_valid_events_gives_matrix_in_schema_order():
    built = builder().build([{"c": 3, "b": 2, "a": 1.5, "id": "x"}, {"a": 4, "b": 5, "c": 6}])
    assert built.matrix.dtype == np.float64
    assert built.matrix.tolist() == [[1.5, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert built.rows == [0, 1]
    assert built.rejected == []


def test_build_empty_batch_gives_empty_matrix():
    built = builder().build([])
    assert built.matrix.shape == (0, 3)


def test_build_missing_feature_is_rejected_with_its_name_and_valid_neighbours_kept():
    built = builder().build([{"a": 1, "b": 2, "c": 3}, {"a": 1, "c": 3}, {"a": 7, "b": 8, "c": 9}])
    assert built.rows == [0, 2]
    assert built.matrix.tolist() == [[1, 2, 3], [7, 8, 9]]
    [(index, reason)] = built.rejected
    assert index == 1
    assert reason == 'feature "b" missing (model m v1 requires 3 features)'


def test_build_missing_feature_under_impute_policy_passes_nan():
    built = builder(ValidationPolicy(missing_feature="impute")).build([{"a": 1, "c": 3}])
    assert built.rejected == []
    assert math.isnan(built.matrix[0, 1])


def test_build_null_counts_as_missing():
    built = builder().build([{"a": 1, "b": None, "c": 3}])
    assert 'feature "b" missing' in built.rejected[0][1]


def test_build_optional_feature_takes_its_default():
    features = [FeatureSpec("a", "float"), FeatureSpec("b", "float", required=False, default=9.5)]
    built = builder(features=features).build([{"a": 1}])
    assert built.matrix.tolist() == [[1.0, 9.5]]


def test_build_wrong_type_is_rejected():
    built = builder().build([{"a": [1], "b": 2, "c": 3}, {"a": True, "b": 2, "c": 3}])
    assert [i for i, _ in built.rejected] == [0, 1]
    assert built.rejected[0][1] == 'feature "a" must be a number, got an array'
    assert built.rejected[1][1] == 'feature "a" must be a number, got a boolean'


def test_build_numeric_strings_are_coerced_by_default():
    built = builder().build([{"a": "1.25", "b": " 2 ", "c": 3}])
    assert built.matrix.tolist() == [[1.25, 2.0, 3.0]]


def test_build_numeric_strings_rejected_when_policy_says_so():
    built = builder(ValidationPolicy(numeric_strings="reject")).build(
        [{"a": "1.25", "b": 2, "c": 3}]
    )
    assert "got the string '1.25'" in built.rejected[0][1]
    assert 'numeric_strings = "coerce"' in built.rejected[0][1]


def test_build_non_numeric_string_is_rejected_even_when_coercing():
    built = builder().build([{"a": "abc", "b": 2, "c": 3}])
    assert built.rejected[0][1] == "feature \"a\" must be a number, got the string 'abc'"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "NaN", "-inf"])
def test_build_non_finite_is_rejected_by_default(value):
    built = builder().build([{"a": value, "b": 2, "c": 3}])
    assert "not finite" in built.rejected[0][1]


def test_build_non_finite_is_imputed_when_policy_says_so():
    built = builder(ValidationPolicy(non_finite="impute")).build(
        [{"a": float("inf"), "b": 2, "c": 3}]
    )
    assert built.rejected == []
    assert math.isnan(built.matrix[0, 0])


def test_build_extra_fields_are_ignored_by_default():
    built = builder().build([{"a": 1, "b": 2, "c": 3, "zzz": "x"}])
    assert built.rows == [0]


def test_build_extra_fields_rejected_when_policy_says_so_but_id_is_allowed():
    policy = ValidationPolicy(extra_fields="reject")
    built = builder(policy).build(
        [{"a": 1, "b": 2, "c": 3, "id": "ok"}, {"a": 1, "b": 2, "c": 3, "zzz": 1}]
    )
    assert built.rows == [0]
    assert built.rejected[0][1].startswith('unexpected field(s) "zzz"')


def test_build_bool_feature_accepts_booleans():
    features = [FeatureSpec("flag", "bool"), FeatureSpec("x", "float")]
    built = builder(features=features).build([{"flag": True, "x": 1}, {"flag": False, "x": 2}])
    assert built.matrix.tolist() == [[1.0, 1.0], [0.0, 2.0]]


def test_build_category_feature_gives_object_matrix():
    features = [FeatureSpec("city", "category"), FeatureSpec("x", "float")]
    built = builder(features=features).build([{"city": "Oslo", "x": 1}])
    assert built.matrix.dtype == object
    assert built.matrix.tolist() == [["Oslo", 1.0]]


def test_builder_refuses_a_schema_it_cannot_serve():
    with pytest.raises(ScoringError, match="cannot serve"):
        builder(features=[FeatureSpec("when", "datetime")])


def test_row_from_defaults_has_one_row_per_schema():
    assert builder().row_from_defaults().shape == (1, 3)


# --------------------------------------------------------------------------- text features

TEXT = [
    FeatureSpec("region", "category", categories=("north", "south", "west")),
    FeatureSpec("note", "string"),
    FeatureSpec("x", "float"),
]


def test_build_unknown_category_is_rejected_naming_feature_value_and_known_categories():
    built = builder(ValidationPolicy(unknown_category="reject"), TEXT).build(
        [
            {"region": "south", "note": "free text", "x": 1.0},
            {"region": "east", "note": "anything", "x": 2.0},
        ]
    )
    assert built.rows == [0]
    [(index, reason)] = built.rejected
    assert index == 1
    assert reason == (
        "feature \"region\" has the unknown category 'east' (model m v1 knows 3: 'north', "
        "'south', 'west'); set [worker] unknown_category = \"score\" to let the model score it "
        "anyway"
    )


def test_build_unknown_category_is_scored_under_the_score_policy():
    built = builder(ValidationPolicy(unknown_category="score"), TEXT).build(
        [{"region": "east", "note": "n", "x": 2.0}]
    )
    assert built.rejected == []
    assert built.matrix.tolist() == [["east", "n", 2.0]]


def test_build_string_features_take_any_text_and_numbers_as_text():
    built = builder(ValidationPolicy(unknown_category="reject"), TEXT).build(
        [{"region": "west", "note": 42, "x": 0.5}]
    )
    assert built.matrix.tolist() == [["west", "42", 0.5]]


def test_build_string_feature_refuses_an_object_value():
    built = builder(features=TEXT).build([{"region": "west", "note": {"a": 1}, "x": 0.5}])
    assert built.rejected == [(0, 'feature "note" must be a string text, got an object')]
