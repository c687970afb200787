"""Scorer: one model call per batch; bisection isolates the rows that make it fail."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from model_store import FeatureSpec, LoadedModel, Manifest
from streamscore.exceptions import ScoringError
from tests.notebook_models import FEATURES, REGIONS, churn_data, fitted_churn_model
from tests.worker.conftest import FailsOnMarker
from worker.scoring import FrameBuilder, Scorer


def test_score_classifier_gives_labels_and_probabilities(register, model_store, demo_set):
    register()
    scorer = Scorer(model_store.load("production"))
    scores = scorer.score(demo_set.X[:50])
    assert scores.rows == list(range(50))
    assert scores.failed == []
    assert scores.probabilities is not None and scores.probabilities.shape == (50, 2)
    expected = model_store.load("production").model.predict(demo_set.X[:50]).tolist()
    assert scores.predictions == expected
    assert all(type(p) is int for p in scores.predictions)


def test_score_bisects_to_the_failing_rows_only(register, model_store, demo_set):
    X = demo_set.X[:64].copy()
    X[[5, 40], 0] = -1.0
    register(wrap=lambda m: FailsOnMarker(m, -1.0))
    scorer = Scorer(model_store.load("production"))
    scores = scorer.score(X)
    assert [row for row, _, _ in scores.failed] == [5, 40]
    assert scores.failed[0][1] == "ValueError"
    assert "first feature -1.0" in scores.failed[0][2]
    assert scores.rows == [i for i in range(64) if i not in (5, 40)]
    assert scores.probabilities is not None
    assert len(scores.predictions) == scores.probabilities.shape[0] == 62


def test_score_empty_matrix():
    class Nothing:
        pass

    class M:
        task = "regression"
        classes = None

    scorer = Scorer(LoadedModel(manifest=M(), model=Nothing()))  # type: ignore[arg-type]
    assert scorer.score(np.empty((0, 3))).rows == []


# --------------------------------------------------------------------------- DataFrame models


class CountingCalls:
    """Wraps a fitted model; counts predict_proba calls and keeps what they were given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.classes_ = inner.classes_
        self.feature_names_in_ = inner.feature_names_in_
        self.inputs: list[Any] = []

    def predict(self, X: Any) -> Any:
        self.inputs.append(X)
        return self.inner.predict(X)

    def predict_proba(self, X: Any) -> Any:
        self.inputs.append(X)
        return self.inner.predict_proba(X)


def sample_manifest(**fields: Any) -> Manifest:
    base: dict[str, Any] = {
        "name": "demo",
        "version": 3,
        "created_at": "2026-01-01T00:00:00.000Z",
        "task": "classification",
        "estimator": "Pipeline",
        "libraries": {},
        "artifact": "model.joblib",
        "sha256": "0" * 64,
        "features": (),
        "classes": None,
        "metrics": {},
    }
    return Manifest(**(base | fields))


def notebook_scorer(model: Any, features: list[FeatureSpec]) -> Scorer:
    manifest = sample_manifest(features=tuple(features), classes=(0, 1))
    return Scorer(LoadedModel(manifest, model))


def test_score_gives_a_dataframe_model_its_fitted_columns_and_dtypes_in_one_call():
    frame = churn_data(200)
    model = CountingCalls(fitted_churn_model(frame))
    # the schema lists the features in another order than the model was fitted on
    features = [
        FeatureSpec("region", "category", categories=REGIONS, frame_dtype="object"),
        FeatureSpec("income", "float", frame_dtype="float64"),
        FeatureSpec("age", "int", frame_dtype="int64"),
    ]
    scorer = notebook_scorer(model, features)
    assert scorer.input_form == "dataframe"
    rows = frame[["region", "income", "age"]].to_numpy(dtype=object)
    scores = scorer.score(rows)
    [given] = model.inputs
    assert list(given.columns) == FEATURES
    assert [str(t) for t in given.dtypes] == ["int64", "float64", "object"]
    expected = model.inner.predict(frame[FEATURES]).tolist()
    assert scores.predictions == expected and scores.failed == []
    np.testing.assert_allclose(scores.probabilities, model.inner.predict_proba(frame[FEATURES]))


def test_score_builds_category_and_bool_columns_and_floats_where_values_are_missing():
    features = [
        FeatureSpec("flag", "bool", frame_dtype="bool"),
        FeatureSpec("n", "int", frame_dtype="int64"),
        FeatureSpec("kind", "category", categories=("a", "b"), frame_dtype="category"),
    ]
    build = FrameBuilder(features, ["kind", "flag", "n"], "m v1")
    frame = build(np.array([[1.0, 3.0, "b"], [0.0, 4.0, "a"]], dtype=object))
    assert list(frame.columns) == ["kind", "flag", "n"]
    assert [str(t) for t in frame.dtypes] == ["category", "bool", "int64"]
    assert list(frame["kind"].cat.categories) == ["a", "b"]
    holes = build(np.array([[1.0, math.nan, "a"]], dtype=object))
    assert str(holes["n"].dtype) == "float64" and math.isnan(holes["n"][0])


def test_score_refuses_a_dataframe_model_whose_schema_misses_a_fitted_column():
    model = fitted_churn_model(churn_data(100))
    features = [FeatureSpec("age", "int"), FeatureSpec("income", "float")]
    with pytest.raises(ScoringError) as caught:
        notebook_scorer(model, features)
    assert str(caught.value) == (
        "model demo v3 was fitted on the columns 'age', 'income', 'region' but its schema "
        "lacks 'region'; register it again with a schema matching feature_names_in_ "
        "(`streamscore models import`)"
    )


def test_score_gives_a_numpy_model_the_matrix_itself(register, model_store, demo_set):
    register()
    scorer = Scorer(model_store.load("production"))
    assert scorer.input_form == "numpy"
    assert scorer.model_input(demo_set.X[:3]) is demo_set.X[:3] or np.shares_memory(
        scorer.model_input(demo_set.X[:3]), demo_set.X
    )


def test_score_gives_a_category_dtype_model_pandas_categoricals():
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = churn_data(300)
    X = frame[FEATURES].assign(region=frame.region.astype("category"))
    model = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype")
    model.fit(X, frame.churned)
    features = [
        FeatureSpec("age", "int", frame_dtype="int64"),
        FeatureSpec("income", "float", frame_dtype="float64"),
        FeatureSpec("region", "category", categories=REGIONS, frame_dtype="category"),
    ]
    scores = notebook_scorer(model, features).score(frame[FEATURES].to_numpy(dtype=object))
    assert scores.failed == []
    assert scores.predictions == model.predict(X).tolist()
