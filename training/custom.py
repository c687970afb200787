"""``[training] pipeline = "package.module:factory"``: the data scientist's own training code.

The factory is called as ``factory(schema, config)`` with the derived feature schema (a list of
:class:`~model_store.FeatureSpec`) and the ``[training]`` settings, and returns the *unfitted*
estimator or Pipeline. ``streamscore train``, the trainer service and the schedule fit it on a
DataFrame of the schema's columns (text as strings), so it can select columns by name.

The module is looked up in the config file's folder first, then on the Python path. Workers
unpickle the fitted result: a pipeline holding the module's own classes or functions needs the
module importable where workers run too (install it, or set ``PYTHONPATH``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sklearn.base import is_classifier, is_regressor

from model_store import FeatureSpec
from streamscore.config import TrainingConfig
from streamscore.exceptions import TrainingError
from training.pipeline import ESTIMATOR_METHODS

Factory = Callable[[list[FeatureSpec], TrainingConfig], Any]


def load_factory(spec: str, config_dir: Path | None) -> Factory:
    """The callable named by ``spec`` (``package.module:function``); errors say what to fix."""
    where = f"[training] pipeline = {spec!r}"
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise TrainingError(
            f"{where}: use 'package.module:function', e.g. 'my_features:make_pipeline' for a "
            f"function make_pipeline(schema, config) in my_features.py beside config.toml"
        )
    added = False
    if config_dir is not None and str(config_dir) not in sys.path:
        sys.path.insert(0, str(config_dir))
        added = True
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        looked = f"{config_dir} and the Python path" if config_dir else "the Python path"
        raise TrainingError(
            f"{where}: module {module_name!r} cannot be imported ({exc}); looked in {looked}: "
            f"check the spelling, or put {module_name.replace('.', '/')}.py beside the config file"
        ) from exc
    finally:
        if added:
            sys.path.remove(str(config_dir))
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise TrainingError(
                f"{where}: module {module_name!r} ({getattr(module, '__file__', '?')}) has no "
                f"{attr!r}; check the name after the colon"
            )
    if not callable(factory):
        raise TrainingError(
            f"{where} is a {type(factory).__name__}, not a function: name a function "
            f"(schema, config) -> unfitted estimator"
        )
    return factory  # type: ignore[no-any-return]


def build_custom(t: TrainingConfig, schema: Sequence[FeatureSpec], config_dir: Path | None) -> Any:
    """Call the configured factory and check that it returned an estimator for the task."""
    factory = load_factory(t.pipeline, config_dir)
    where = f"[training] pipeline = {t.pipeline!r}"
    try:
        estimator = factory(list(schema), t)
    except Exception as exc:  # user code: any failure is a training error with its cause
        raise TrainingError(f"{where} raised {type(exc).__name__}: {exc}") from exc
    check_estimator(estimator, t.task, where=where)
    return estimator


def check_estimator(estimator: Any, task: str, *, where: str) -> None:
    """Refuse what is not an estimator, or one of the wrong kind for ``task``."""
    missing = [m for m in ESTIMATOR_METHODS if not callable(getattr(estimator, m, None))]
    if missing:
        raise TrainingError(
            f"{where} returned {type(estimator).__name__} {_short(estimator)}, not a "
            f"scikit-learn estimator (no {', '.join(missing)}); return an unfitted estimator or "
            f"Pipeline, e.g. make_pipeline(ColumnTransformer(...), RandomForestClassifier())"
        )
    if task == "classification" and is_regressor(estimator):
        raise TrainingError(
            f"{where} returned a regressor ({_name(estimator)}) but [training] task = "
            f"'classification'; return a classifier or set task = 'regression'"
        )
    if task == "regression" and is_classifier(estimator):
        raise TrainingError(
            f"{where} returned a classifier ({_name(estimator)}) but [training] task = "
            f"'regression'; return a regressor or set task = 'classification'"
        )


def describe_custom(t: TrainingConfig, estimator: Any) -> str:
    """The estimator as recorded in the manifest."""
    return f"{t.pipeline} -> {_name(estimator)}"


def _name(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return f"Pipeline({', '.join(type(step).__name__ for _, step in steps)})"
    return type(estimator).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
