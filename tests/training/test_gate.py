"""The quality gate: thresholds, comparison with production, and scoring production."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression

from model_store import FeatureSpec, ModelStore
from streamscore import jsonio
from streamscore.config import GateConfig
from training.gate import (
    GateCheck,
    GateVerdict,
    ProductionScore,
    judge,
    schema_difference,
    score_production,
)

OFF = ""  # compare_metric that turns the comparison off


def test_gate_thresholds_pass_with_every_check_and_its_numbers():
    gate = GateConfig(min={"roc_auc": 0.9}, max={"log_loss": 0.3}, compare_metric=OFF)
    verdict = judge(gate, {"roc_auc": 0.95, "log_loss": 0.2})
    assert verdict == GateVerdict(
        passed=True,
        reasons=[],
        checks=[
            GateCheck("min roc_auc", "min", "roc_auc", True, "roc_auc 0.9500 >= 0.9", 0.95, 0.9),
            GateCheck("max log_loss", "max", "log_loss", True, "log_loss 0.2000 <= 0.3", 0.2, 0.3),
        ],
    )


def test_gate_thresholds_fail_with_reasons():
    gate = GateConfig(min={"roc_auc": 0.9}, max={"log_loss": 0.3}, compare_metric=OFF)
    verdict = judge(gate, {"roc_auc": 0.85, "log_loss": 0.4})
    assert not verdict.passed
    assert verdict.reasons == ["roc_auc 0.8500 < 0.9", "log_loss 0.4000 > 0.3"]
    assert verdict.summary() == "roc_auc 0.8500 < 0.9; log_loss 0.4000 > 0.3"


def test_gate_bound_is_inclusive():
    assert judge(GateConfig(min={"accuracy": 0.9}, compare_metric=OFF), {"accuracy": 0.9}).passed


def test_gate_metric_that_was_not_computed_fails():
    verdict = judge(GateConfig(min={"r2": 0.5}, compare_metric=OFF), {"rmse": 1.0})
    assert verdict.reasons == ["r2 was not computed"]


def test_gate_without_checks_passes():
    verdict = judge(GateConfig(compare_metric=OFF), {"accuracy": 0.1})
    assert verdict.passed and verdict.checks == []
    assert verdict.summary() == "passed (no checks configured)"


def test_gate_passes_within_tolerance_of_production():
    gate = GateConfig(compare_metric="roc_auc", tolerance=0.01)
    verdict = judge(gate, {"roc_auc": 0.945}, production=ProductionScore(3, {"roc_auc": 0.95}))
    (check,) = verdict.checks
    assert verdict.passed
    assert (check.name, check.value, check.reference) == ("vs production v3 roc_auc", 0.945, 0.95)
    assert check.bound is not None and abs(check.bound - 0.94) < 1e-12


def test_gate_fails_when_worse_than_production_by_more_than_tolerance():
    gate = GateConfig(compare_metric="roc_auc", tolerance=0.01)
    verdict = judge(gate, {"roc_auc": 0.93}, production=ProductionScore(3, {"roc_auc": 0.95}))
    assert verdict.reasons == [
        "worse than production v3: roc_auc 0.9300 vs production v3 0.9500 (tolerance 0.01)"
    ]


def test_gate_lower_is_better_metrics_compare_the_other_way():
    gate = GateConfig(compare_metric="rmse", tolerance=0.5)
    production = ProductionScore(1, {"rmse": 10.0})
    assert judge(gate, {"rmse": 10.4}, production=production).passed
    assert judge(gate, {"rmse": 2.0}, production=production).passed
    verdict = judge(gate, {"rmse": 10.6}, production=production)
    assert not verdict.passed and "lower is better" in verdict.reasons[0]
    assert verdict.checks[0].bound == 10.5


def test_gate_log_loss_is_lower_is_better():
    gate = GateConfig(compare_metric="log_loss", tolerance=0.0)
    assert not judge(
        gate, {"log_loss": 0.3}, production=ProductionScore(1, {"log_loss": 0.2})
    ).passed


def test_gate_without_production_passes_the_comparison_with_a_note():
    verdict = judge(GateConfig(compare_metric="accuracy"), {"accuracy": 0.5}, production=None)
    assert verdict.passed
    assert verdict.checks[0].detail == "no production model yet: accuracy comparison skipped"


def test_gate_fails_when_production_could_not_be_scored():
    production = ProductionScore(2, None, "its feature schema differs from the candidate's (...)")
    verdict = judge(
        GateConfig(compare_metric="accuracy"), {"accuracy": 0.99}, production=production
    )
    assert verdict.reasons == [
        "cannot compare with production v2: its feature schema differs from the candidate's (...)"
    ]


def test_gate_fails_when_production_lacks_the_metric():
    verdict = judge(
        GateConfig(compare_metric="log_loss"),
        {"log_loss": 0.1},
        production=ProductionScore(2, {"accuracy": 0.9}),
    )
    assert verdict.reasons == ["log_loss was not computed for production v2"]


def test_verdict_to_dict_is_json_ready():
    gate = GateConfig(min={"accuracy": 0.9}, compare_metric="accuracy")
    verdict = judge(gate, {"accuracy": 0.8}, production=ProductionScore(1, {"accuracy": 0.85}))
    data = jsonio.loads(jsonio.dumps(verdict.to_dict()))
    assert data["passed"] is False and len(data["reasons"]) == 2
    assert data["checks"][1] == {
        "name": "vs production v1 accuracy",
        "kind": "compare",
        "metric": "accuracy",
        "passed": False,
        "detail": "worse than production v1: accuracy 0.8000 vs production v1 0.8500 "
        "(tolerance 0.01)",
        "value": 0.8,
        "bound": 0.84,
        "reference": 0.85,
    }


# ----------------------------------------------------------------------------- schemas


def specs(*items: str) -> list[FeatureSpec]:
    return [FeatureSpec(*item.split(":")) for item in items]


def test_schema_difference_same_schema_is_empty():
    assert schema_difference(specs("a:float", "b:int"), specs("a:float", "b:float")) == ""


def test_schema_difference_names_missing_and_added_features():
    diff = schema_difference(specs("a:float", "b:float"), specs("a:float", "c:float", "d:float"))
    assert diff == "2 vs 3 features: candidate lacks 'b', candidate adds 'c', 'd'"


def test_schema_difference_order_and_category_changes():
    assert "another order" in schema_difference(
        specs("a:float", "b:float"), specs("b:float", "a:float")
    )
    assert schema_difference(specs("a:float"), specs("a:category")) == (
        "feature types differ: a float -> category"
    )


# ----------------------------------------------------------------------------- production


def small_classifier_store(tmp_path, features):
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]])
    y = np.array([0, 1, 0, 1])
    store = ModelStore(tmp_path / "models", "m")
    manifest = store.register(
        LogisticRegression().fit(X, y),
        task="classification",
        features=features,
        classes=[0, 1],
        metrics={"accuracy": 1.0},
        estimator="LogisticRegression()",
    )
    store.promote(manifest.version, "production")
    return store, X, y


def test_score_production_without_production_is_none(tmp_path):
    store = ModelStore(tmp_path / "models", "m")
    schema = specs("a:float")
    X = np.zeros((2, 1))
    result = score_production(
        store, "production", task="classification", schema=schema, X_test=X, y_test=X[:, 0]
    )
    assert result is None


def test_score_production_scores_the_same_rows(tmp_path):
    schema = specs("a:float", "b:float")
    store, X, y = small_classifier_store(tmp_path, schema)
    result = score_production(
        store, "production", task="classification", schema=schema, X_test=X, y_test=y
    )
    assert result is not None and result.version == 1 and result.problem == ""
    assert result.metrics is not None and result.metrics["accuracy"] == 1.0


def test_score_production_with_another_schema_reports_the_difference(tmp_path):
    store, X, y = small_classifier_store(tmp_path, specs("a:float", "b:float"))
    result = score_production(
        store,
        "production",
        task="classification",
        schema=specs("a:float", "c:float"),
        X_test=X,
        y_test=y,
    )
    assert result is not None and result.metrics is None
    assert result.problem == (
        "its feature schema differs from the candidate's "
        "(2 vs 2 features: candidate lacks 'b', candidate adds 'c')"
    )


def test_score_production_of_another_task_is_a_problem(tmp_path):
    store = ModelStore(tmp_path / "models", "m")
    X, y = np.array([[0.0], [1.0]]), np.array([0.0, 1.0])
    store.register(
        LinearRegression().fit(X, y),
        task="regression",
        features=specs("a:float"),
        classes=None,
        metrics={"r2": 1.0},
        estimator="LinearRegression()",
        aliases=("production",),
    )
    result = score_production(
        store, "production", task="classification", schema=specs("a:float"), X_test=X, y_test=y
    )
    assert result is not None
    assert result.problem == "it is a regression model and the candidate a classification model"


def test_score_production_that_cannot_be_loaded_is_a_problem(tmp_path):
    schema = specs("a:float", "b:float")
    store, X, y = small_classifier_store(tmp_path, schema)
    (store.folder / "1" / "model.skops").write_bytes(b"tampered")
    result = score_production(
        store, "production", task="classification", schema=schema, X_test=X, y_test=y
    )
    assert result is not None and result.problem.startswith("it cannot be loaded (")
    assert "sha256" in result.problem
