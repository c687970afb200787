"""Held-out split and metrics: binary, multiclass and regression."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from streamscore.exceptions import TrainingError
from training.evaluate import evaluate, split

SEED = 0


def fitted_split(X, y, model, *, task="classification"):
    X_train, X_test, y_train, y_test = split(X, y, task=task, test_size=0.3, seed=SEED)
    return model.fit(X_train, y_train), X_test, y_test


def test_evaluate_binary_classification_has_all_four_metrics():
    X, y = load_breast_cancer(return_X_y=True)
    model, X_test, y_test = fitted_split(
        X, y, make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    )
    metrics = evaluate(model, X_test, y_test, task="classification")
    assert list(metrics) == ["accuracy", "f1", "roc_auc", "log_loss"]
    assert metrics["accuracy"] > 0.95 and metrics["f1"] > 0.95 and metrics["roc_auc"] > 0.98
    assert 0 < metrics["log_loss"] < 0.2


def test_evaluate_binary_f1_is_for_the_second_class_with_text_labels():
    X, y = load_breast_cancer(return_X_y=True)
    names = np.array(["benign", "malignant"], dtype=object)[1 - y]  # malignant = class 0
    model, X_test, y_test = fitted_split(
        X, names, make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    )
    metrics = evaluate(model, X_test, y_test, task="classification")
    assert list(model.classes_) == ["benign", "malignant"]
    assert set(metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert metrics["roc_auc"] > 0.98


def test_evaluate_multiclass_uses_macro_f1_and_one_vs_rest_auc():
    X, y = load_iris(return_X_y=True)
    model, X_test, y_test = fitted_split(X, y, LogisticRegression(max_iter=1000))
    metrics = evaluate(model, X_test, y_test, task="classification")
    assert set(metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert 0.85 < metrics["f1"] <= 1.0 and 0.9 < metrics["roc_auc"] <= 1.0


def test_evaluate_without_predict_proba_uses_the_decision_function_and_skips_log_loss():
    X, y = load_breast_cancer(return_X_y=True)
    model, X_test, y_test = fitted_split(X, y, make_pipeline(StandardScaler(), LinearSVC()))
    metrics = evaluate(model, X_test, y_test, task="classification")
    assert set(metrics) == {"accuracy", "f1", "roc_auc"}


def test_evaluate_skips_roc_auc_when_a_class_is_missing_from_the_rows():
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    metrics = evaluate(model, X[y < 2], y[y < 2], task="classification")
    assert "roc_auc" not in metrics and "log_loss" in metrics


def test_evaluate_regression_has_rmse_mae_r2():
    X, y = load_diabetes(return_X_y=True)
    model, X_test, y_test = fitted_split(X, y, LinearRegression(), task="regression")
    metrics = evaluate(model, X_test, y_test, task="regression")
    assert list(metrics) == ["rmse", "mae", "r2"]
    assert metrics["rmse"] > metrics["mae"] > 0 and 0.3 < metrics["r2"] < 0.7
    predicted = model.predict(X_test)
    assert math.isclose(metrics["rmse"], float(np.sqrt(np.mean((predicted - y_test) ** 2))))


def test_split_is_stratified_and_reproducible():
    X, y = load_iris(return_X_y=True)
    first = split(X, y, task="classification", test_size=0.2, seed=7)
    second = split(X, y, task="classification", test_size=0.2, seed=7)
    assert np.array_equal(first[3], second[3])
    assert np.bincount(first[3]).tolist() == [10, 10, 10]


def test_split_single_class_is_an_error():
    with pytest.raises(TrainingError, match=r"single class \(1 in all 10 rows\)"):
        split(
            np.zeros((10, 2)), np.ones(10, dtype=int), task="classification", test_size=0.2, seed=0
        )


def test_split_too_few_rows_is_an_error_naming_test_size():
    y = np.array([0, 0, 1, 1])
    with pytest.raises(TrainingError, match=r"cannot split 4 rows .* test_size = 0.2: "):
        split(np.zeros((4, 1)), y, task="classification", test_size=0.2, seed=0)
