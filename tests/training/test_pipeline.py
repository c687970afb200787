"""Building the Pipeline: preprocessing from config, the estimator from its class path."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from model_store import FeatureSpec
from streamscore.config import TrainingConfig
from streamscore.exceptions import TrainingError
from training.features import derive_schema, feature_matrix
from training.pipeline import build_pipeline, describe, import_estimator

NUMERIC = [FeatureSpec("a", "float"), FeatureSpec("b", "float")]


def test_import_estimator_builds_the_class_with_params():
    estimator = import_estimator("sklearn.linear_model.LogisticRegression", {"C": 0.5})
    assert isinstance(estimator, LogisticRegression) and estimator.C == 0.5


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("LogisticRegression", {}, "use a full class path"),
        ("sklearn.no_such_module.Model", {}, "module 'sklearn.no_such_module' cannot be imported"),
        ("sklearn.linear_model.LogisticRegresion", {}, "has no 'LogisticRegresion'"),
        ("sklearn.metrics.accuracy_score", {}, "is a function, not a class"),
        (
            "sklearn.linear_model.LogisticRegression",
            {"colour": 1},
            r"'colour' is not a parameter of sklearn.linear_model.LogisticRegression; its "
            r"parameters are penalty, .*C, ",
        ),
        (
            "sklearn.ensemble.RandomForestClassifier",
            {"n_estimator": 10},
            r"'n_estimator' is not a parameter .* did you mean 'n_estimators'\?",
        ),
        ("collections.OrderedDict", {}, r"not a scikit-learn estimator \(no fit, predict"),
    ],
)
def test_import_estimator_bad_path_or_params_is_a_clear_error(path, params, message):
    with pytest.raises(TrainingError, match=message):
        import_estimator(path, params)


def test_pipeline_refuses_a_regressor_for_classification():
    cfg = TrainingConfig(estimator="sklearn.linear_model.Ridge")
    with pytest.raises(TrainingError, match=r"'sklearn.linear_model.Ridge' is not a classifier"):
        build_pipeline(cfg, NUMERIC)


def test_pipeline_refuses_a_classifier_for_regression():
    cfg = TrainingConfig(task="regression", estimator="sklearn.linear_model.LogisticRegression")
    with pytest.raises(TrainingError, match="is not a regressor"):
        build_pipeline(cfg, NUMERIC)


def test_pipeline_default_estimator_follows_the_task():
    assert TrainingConfig().estimator == "sklearn.linear_model.LogisticRegression"
    assert TrainingConfig(task="regression").estimator == "sklearn.linear_model.Ridge"
    assert build_pipeline(TrainingConfig(task="regression"), NUMERIC).steps[-1][1].alpha == 1.0


def test_pipeline_numeric_steps_follow_the_config():
    default = build_pipeline(TrainingConfig(), NUMERIC)
    assert [name for name, _ in default.steps] == ["impute", "scale", "model"]
    assert default.named_steps["impute"].strategy == "median"
    assert isinstance(default.named_steps["scale"], StandardScaler)
    minmax = build_pipeline(TrainingConfig(imputer="none", scaler="minmax"), NUMERIC)
    assert [name for name, _ in minmax.steps] == ["scale", "model"]
    assert isinstance(minmax.named_steps["scale"], MinMaxScaler)
    bare = build_pipeline(TrainingConfig(imputer="none", scaler="none"), NUMERIC)
    assert [name for name, _ in bare.steps] == ["model"]


def test_pipeline_one_hot_encodes_categorical_columns_by_index():
    schema = [FeatureSpec("x", "float"), FeatureSpec("city", "category", categories=("a", "b"))]
    pipeline = build_pipeline(TrainingConfig(imputer="mean"), schema)
    preprocess = pipeline.named_steps["preprocess"]
    assert isinstance(preprocess, ColumnTransformer)
    selected = {name: columns for name, _, columns in preprocess.transformers}
    assert selected == {"numeric": [0], "categorical": [1]}
    numeric = preprocess.transformers[0][1]
    assert isinstance(numeric.named_steps["impute"], SimpleImputer)
    assert numeric.named_steps["impute"].strategy == "mean"


def test_pipeline_with_categories_fits_and_predicts_object_arrays_without_warnings():
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            "city": rng.choice(["Oslo", "Rome", None], size=60).tolist(),
            "x": rng.normal(size=60),
            "target": [0, 1] * 30,
        }
    )
    cfg = TrainingConfig(categorical_columns=["city"], estimator_params={"max_iter": 1000})
    schema = derive_schema(data, label="target", categorical=["city"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline = build_pipeline(cfg, schema).fit(feature_matrix(data, schema), data["target"])
        unseen = np.array([["Paris", 0.3], [np.nan, np.nan], ["Rome", 1.0]], dtype=object)
        assert pipeline.predict(unseen).shape == (3,)
        assert pipeline.predict_proba(unseen).shape == (3, 2)


def test_describe_is_class_path_and_sorted_params():
    cfg = TrainingConfig(estimator_params={"max_iter": 2000, "C": 0.5})
    assert describe(cfg) == "sklearn.linear_model.LogisticRegression(C=0.5, max_iter=2000)"
