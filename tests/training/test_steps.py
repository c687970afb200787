"""Training steps one by one: cleansing, schema, pipeline, evaluation, gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from streamscore.config import GateConfig, TrainingConfig
from streamscore.exceptions import TrainingError
from training.cleanse import cleanse
from training.evaluate import evaluate, split
from training.features import derive_schema, feature_matrix
from training.gate import judge
from training.pipeline import build_pipeline, import_estimator


def frame(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


# ----------------------------------------------------------------------------- cleansing


def test_cleanse_drops_duplicates_and_unlabeled_rows_and_reports_them():
    data = frame(id=["a", "b", "c", "d"], x=[1.0, 1.0, 2.0, 3.0], target=[0, 0, None, 1])
    cleaned, report = cleanse(data, label="target", id_column="id")
    assert cleaned["x"].tolist() == [1.0, 3.0]
    assert (report.duplicates_dropped, report.unlabeled_dropped, report.rows_out) == (1, 1, 2)
    assert "duplicate rows dropped: 1" in report.lines()


def test_cleanse_coerces_numeric_text_but_not_real_text():
    data = frame(x=["1.5", "2", None], name=["a", "b", "c"], target=[0, 1, 0])
    cleaned, report = cleanse(data, label="target", id_column="id")
    assert cleaned["x"].dtype.kind == "f"
    assert report.coerced_columns == ["x"]
    assert cleaned["name"].tolist() == ["a", "b", "c"]


def test_cleanse_missing_label_column_names_it():
    with pytest.raises(TrainingError, match=r"label column 'y' is not in the data.*label_column"):
        cleanse(frame(x=[1]), label="y", id_column="id")


def test_cleanse_nothing_left_is_an_error():
    with pytest.raises(TrainingError, match="no rows left after cleansing"):
        cleanse(frame(x=[1.0, 2.0], target=[None, None]), label="target", id_column="id")


# ----------------------------------------------------------------------------- schema


def test_schema_is_every_column_but_label_id_and_dropped_in_order():
    data = frame(id=["a"], b=[1.5], a=[2], drop_me=[0.0], target=[1])
    schema = derive_schema(data, label="target", id_column="id", drop=["drop_me"])
    assert [(f.name, f.dtype, f.required) for f in schema] == [
        ("b", "float", True),
        ("a", "int", True),
    ]
    assert schema[0].default == 1.5


def test_schema_text_column_without_transform_says_what_to_do():
    data = frame(city=["Oslo", "Rome"], target=[0, 1])
    with pytest.raises(TrainingError, match="categorical_columns or drop_columns"):
        derive_schema(data, label="target", id_column="id")


def test_schema_categorical_column_records_its_categories():
    data = frame(city=["Oslo", "Rome", "Oslo"], x=[1.0, 2.0, 3.0], target=[0, 1, 0])
    schema = derive_schema(data, label="target", id_column="id", categorical=["city"])
    assert schema[0].dtype == "category" and schema[0].categories == ("Oslo", "Rome")
    matrix = feature_matrix(data, schema)
    assert matrix.dtype == object and matrix[1].tolist() == ["Rome", 2.0]


# ----------------------------------------------------------------------------- pipeline


def test_pipeline_imports_estimator_from_config():
    estimator = import_estimator("sklearn.linear_model.LogisticRegression", {"C": 0.5})
    assert isinstance(estimator, LogisticRegression) and estimator.C == 0.5


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("LogisticRegression", {}, "full class path"),
        ("sklearn.linear_model.NoSuchModel", {}, "cannot be imported"),
        ("sklearn.linear_model.LogisticRegression", {"colour": 1}, "estimator_params"),
        ("collections.OrderedDict", {}, "not a scikit-learn estimator"),
    ],
)
def test_pipeline_bad_estimator_is_a_clear_error(path, params, message):
    with pytest.raises(TrainingError, match=message):
        import_estimator(path, params)


def test_pipeline_refuses_a_regressor_for_classification():
    cfg = TrainingConfig(estimator="sklearn.linear_model.LinearRegression")
    with pytest.raises(TrainingError, match="not a classifier"):
        build_pipeline(cfg, [])


def test_pipeline_with_categorical_columns_fits_and_predicts_on_object_arrays():
    data = frame(city=["Oslo", "Rome"] * 20, x=list(range(40)), target=[0, 1] * 20)
    cfg = TrainingConfig(categorical_columns=["city"], estimator_params={"max_iter": 1000})
    schema = derive_schema(data, label="target", id_column="id", categorical=["city"])
    pipeline = build_pipeline(cfg, schema).fit(feature_matrix(data, schema), data["target"])
    assert pipeline.predict(np.array([["Rome", 3.0], ["Paris", 4.0]], dtype=object)).shape == (2,)


# ----------------------------------------------------------------------------- evaluation


def test_evaluate_binary_classification_metrics():
    X, y = load_iris(return_X_y=True)
    X, y = X[y < 2], y[y < 2]
    X_train, X_test, y_train, y_test = split(X, y, task="classification", test_size=0.3, seed=0)
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    metrics = evaluate(model, X_test, y_test, task="classification")
    assert set(metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert metrics["accuracy"] == 1.0


def test_evaluate_multiclass_metrics():
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = split(X, y, task="classification", test_size=0.3, seed=0)
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    metrics = evaluate(model, X_test, y_test, task="classification")
    assert set(metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert 0.8 < metrics["roc_auc"] <= 1.0


def test_evaluate_regression_metrics():
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = split(X, y, task="regression", test_size=0.3, seed=0)
    metrics = evaluate(LinearRegression().fit(X_train, y_train), X_test, y_test, task="regression")
    assert set(metrics) == {"rmse", "mae", "r2"}
    assert metrics["rmse"] > metrics["mae"] > 0 and 0.3 < metrics["r2"] < 0.7


def test_split_single_class_is_an_error():
    with pytest.raises(TrainingError, match="single class"):
        split(np.zeros((10, 2)), np.ones(10), task="classification", test_size=0.2, seed=0)


def test_split_is_stratified_and_reproducible():
    X, y = load_iris(return_X_y=True)
    a = split(X, y, task="classification", test_size=0.2, seed=7)
    b = split(X, y, task="classification", test_size=0.2, seed=7)
    assert np.array_equal(a[3], b[3])
    assert sorted(np.bincount(a[3]).tolist()) == [10, 10, 10]


# ----------------------------------------------------------------------------- gate


def test_gate_thresholds_pass_and_fail_with_numbers():
    gate = GateConfig(min={"roc_auc": 0.9}, max={"log_loss": 0.3}, compare_metric="")
    assert judge(gate, {"roc_auc": 0.95, "log_loss": 0.2}).passed
    verdict = judge(gate, {"roc_auc": 0.85, "log_loss": 0.4})
    assert not verdict.passed
    assert verdict.reasons == ["roc_auc 0.8500 < 0.9", "log_loss 0.4000 > 0.3"]


def test_gate_missing_metric_fails():
    verdict = judge(GateConfig(min={"r2": 0.5}, compare_metric=""), {"rmse": 1.0})
    assert verdict.reasons == ["r2 was not computed"]


def test_gate_compares_with_production_within_tolerance():
    gate = GateConfig(compare_metric="roc_auc", tolerance=0.01)
    assert judge(gate, {"roc_auc": 0.945}, production={"roc_auc": 0.95}).passed
    verdict = judge(
        gate, {"roc_auc": 0.93}, production={"roc_auc": 0.95}, production_label="production v3"
    )
    assert not verdict.passed
    assert verdict.reasons[0].startswith(
        "worse than production v3: roc_auc 0.9300 vs production v3 0.9500"
    )


def test_gate_lower_is_better_metrics_compare_the_other_way():
    gate = GateConfig(compare_metric="rmse", tolerance=0.5)
    assert judge(gate, {"rmse": 10.4}, production={"rmse": 10.0}).passed
    assert not judge(gate, {"rmse": 10.6}, production={"rmse": 10.0}).passed


def test_gate_without_production_skips_the_comparison():
    verdict = judge(GateConfig(compare_metric="accuracy"), {"accuracy": 0.5}, production=None)
    assert verdict.passed and "comparison skipped" in verdict.checks[0].detail


def test_gate_fails_when_production_cannot_be_compared():
    verdict = judge(
        GateConfig(compare_metric="accuracy"),
        {"accuracy": 0.99},
        production_problem="v2 has a different feature schema",
    )
    assert not verdict.passed and "different feature schema" in verdict.reasons[0]
