"""The scikit-learn Pipeline that travels inside the artifact: preprocessing + estimator.

Preprocessing lives in the pipeline so the worker applies exactly what training applied:

* numeric features: imputer (``[training] imputer``), then scaler (``[training] scaler``);
* categorical features: most-frequent imputer, then one-hot encoding (unknown categories
  become all zeros), in a ColumnTransformer that selects columns by integer index, because
  the pipeline is fitted on (and the worker predicts on) numpy arrays without column names.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from sklearn.base import is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

from model_store import FeatureSpec
from model_store.manifest import TEXT_DTYPES
from streamscore.config import TrainingConfig
from streamscore.exceptions import TrainingError

SCALERS: dict[str, Any] = {
    "standard": StandardScaler,
    "minmax": MinMaxScaler,
    "robust": RobustScaler,
}

#: What an object needs to be usable as the pipeline's last step.
ESTIMATOR_METHODS = ("fit", "predict", "get_params")


def import_estimator(path: str, params: Mapping[str, Any]) -> Any:
    """Instantiate ``package.module.Class(**params)``; every failure says what to fix."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise TrainingError(
            f"[training] estimator = {path!r}: use a full class path such as "
            f"'sklearn.linear_model.LogisticRegression'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainingError(
            f"[training] estimator = {path!r}: module {module_name!r} cannot be imported "
            f"({exc}); check the spelling or install the package"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise TrainingError(
            f"[training] estimator = {path!r}: module {module_name!r} has no {class_name!r}; "
            f"check the spelling (class names are case-sensitive)"
        )
    if not inspect.isclass(cls):
        raise TrainingError(
            f"[training] estimator = {path!r} is a {type(cls).__name__}, not a class; name a "
            f"scikit-learn estimator class"
        )
    _check_params(path, cls, params)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise TrainingError(f"[training] estimator_params for {path}: {exc}") from exc
    missing = [m for m in ESTIMATOR_METHODS if not callable(getattr(estimator, m, None))]
    if missing:
        raise TrainingError(
            f"[training] estimator = {path!r} is not a scikit-learn estimator (no "
            f"{', '.join(missing)}); name a class with fit and predict, such as "
            f"'sklearn.linear_model.LogisticRegression'"
        )
    return estimator


def _check_params(path: str, cls: type, params: Mapping[str, Any]) -> None:
    """Every key of ``estimator_params`` must be a parameter of the class's constructor."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # a class without an inspectable signature: let it decide
        return
    accepted = [
        name
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return
    unknown = [key for key in params if key not in accepted]
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(key, accepted, n=1)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    raise TrainingError(
        f"[training] estimator_params: {key!r} is not a parameter of {path}; {suggestion}"
        f"its parameters are {', '.join(accepted) or 'none'}"
    )


def check_estimator_config(cfg: TrainingConfig) -> None:
    """Check ``estimator``, ``estimator_params`` and ``task`` before any data is read."""
    build_pipeline(cfg, [])


def describe(cfg: TrainingConfig) -> str:
    """The estimator as recorded in the manifest: class path and parameters."""
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(cfg.estimator_params.items()))
    return f"{cfg.estimator}({params})"


def build_pipeline(cfg: TrainingConfig, schema: Sequence[FeatureSpec]) -> Pipeline:
    """Preprocessing for ``schema`` plus the configured estimator, not yet fitted."""
    estimator = import_estimator(cfg.estimator, cfg.estimator_params)
    if cfg.task == "classification" and not is_classifier(estimator):
        raise TrainingError(
            f"[training] estimator = {cfg.estimator!r} is not a classifier but task is "
            f"'classification'; pick a classifier or set task = 'regression'"
        )
    if cfg.task == "regression" and not is_regressor(estimator):
        raise TrainingError(
            f"[training] estimator = {cfg.estimator!r} is not a regressor but task is "
            f"'regression'; pick a regressor or set task = 'classification'"
        )
    numeric_steps: list[tuple[str, Any]] = []
    if cfg.imputer != "none":
        numeric_steps.append(("impute", SimpleImputer(strategy=cfg.imputer)))
    if cfg.scaler != "none":
        numeric_steps.append(("scale", SCALERS[cfg.scaler]()))
    categorical = [i for i, f in enumerate(schema) if f.dtype in TEXT_DTYPES]
    if not categorical:
        return Pipeline([*numeric_steps, ("model", estimator)])
    numeric = [i for i, f in enumerate(schema) if f.dtype not in TEXT_DTYPES]
    transformers: list[tuple[str, Any, list[int]]] = []
    if numeric:
        numeric_part = Pipeline(numeric_steps) if numeric_steps else "passthrough"
        transformers.append(("numeric", numeric_part, numeric))
    encoder = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    transformers.append(("categorical", encoder, categorical))
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("model", estimator)])
