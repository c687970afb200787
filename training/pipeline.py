"""Build the scikit-learn Pipeline that travels inside the artifact."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

from model_store import FeatureSpec
from streamscore.config import TrainingConfig
from streamscore.exceptions import TrainingError

SCALERS: dict[str, Any] = {
    "standard": StandardScaler,
    "minmax": MinMaxScaler,
    "robust": RobustScaler,
}


def import_estimator(path: str, params: dict[str, Any]) -> Any:
    """Instantiate ``package.module.Class(**params)``; errors say what to fix."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise TrainingError(
            f"[training] estimator = {path!r}: use a full class path such as "
            f"'sklearn.linear_model.LogisticRegression'"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise TrainingError(f"[training] estimator = {path!r} cannot be imported: {exc}") from exc
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise TrainingError(f"[training] estimator_params for {path}: {exc}") from exc
    if not isinstance(estimator, BaseEstimator) or not hasattr(estimator, "fit"):
        raise TrainingError(f"[training] estimator = {path!r} is not a scikit-learn estimator")
    return estimator


def describe(cfg: TrainingConfig) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(cfg.estimator_params.items()))
    return f"{cfg.estimator}({params})"


def build_pipeline(cfg: TrainingConfig, schema: Sequence[FeatureSpec]) -> Pipeline:
    estimator = import_estimator(cfg.estimator, dict(cfg.estimator_params))
    if cfg.task == "classification" and not is_classifier(estimator):
        raise TrainingError(
            f"{cfg.estimator} is not a classifier but [training] task is classification"
        )
    if cfg.task == "regression" and not is_regressor(estimator):
        raise TrainingError(f"{cfg.estimator} is not a regressor but [training] task is regression")
    numeric = [i for i, f in enumerate(schema) if f.dtype != "category"]
    categorical = [i for i, f in enumerate(schema) if f.dtype == "category"]
    numeric_steps: list[tuple[str, Any]] = []
    if cfg.imputer != "none":
        numeric_steps.append(("impute", SimpleImputer(strategy=cfg.imputer)))
    if cfg.scaler != "none":
        numeric_steps.append(("scale", SCALERS[cfg.scaler]()))
    steps: list[tuple[str, Any]] = []
    if categorical:
        transformers: list[tuple[str, Any, list[int]]] = []
        if numeric:
            transformers.append(
                ("numeric", Pipeline(numeric_steps) if numeric_steps else "passthrough", numeric)
            )
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            )
        )
        steps.append(("preprocess", ColumnTransformer(transformers)))
    else:
        steps.extend(numeric_steps)
    steps.append(("model", estimator))
    return Pipeline(steps)
