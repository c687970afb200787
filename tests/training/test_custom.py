"""``[training] pipeline = "module:factory"``: the data scientist's own training code."""

from __future__ import annotations

import textwrap

import pytest

from model_store import FeatureSpec
from streamscore.config import TrainingConfig
from streamscore.exceptions import TrainingError
from training.custom import build_custom, load_factory

SCHEMA = [FeatureSpec("x", "float"), FeatureSpec("note", "string")]


@pytest.fixture
def module(tmp_path):
    """Write ``name.py`` beside the config (tmp_path) with the given source."""

    def write(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))

    return write


def test_factory_is_loaded_from_the_config_folder_and_called_with_schema_and_config(
    tmp_path, module
):
    module(
        "byom_factory_ok",
        """
        from sklearn.linear_model import Ridge

        def make(schema, config):
            return Ridge(alpha=len(schema) + config.seed)
        """,
    )
    t = TrainingConfig(task="regression", pipeline="byom_factory_ok:make", seed=3)
    assert build_custom(t, SCHEMA, tmp_path).alpha == 5


@pytest.mark.parametrize(
    ("spec", "source", "message"),
    [
        ("no_colon", "", r"use 'package.module:function'"),
        ("byom_missing_module:make", None, r"module 'byom_missing_module' cannot be imported"),
        ("byom_no_attr:make", "x = 1\n", r"has no 'make'; check the name after the colon"),
        ("byom_not_callable:make", "make = 3\n", r"is a int, not a function"),
        (
            "byom_not_estimator:make",
            "def make(schema, config):\n    return 'a string'\n",
            r"returned str 'a string', not a scikit-learn estimator \(no fit, predict",
        ),
        (
            "byom_wrong_task:make",
            "from sklearn.linear_model import LogisticRegression\n"
            "def make(schema, config):\n    return LogisticRegression()\n",
            r"returned a classifier \(LogisticRegression\) but \[training\] task = 'regression'",
        ),
        (
            "byom_raises:make",
            "def make(schema, config):\n    raise KeyError('amount')\n",
            r"raised KeyError: 'amount'",
        ),
    ],
)
def test_factory_problems_are_clear_errors(tmp_path, module, spec, source, message):
    name = spec.partition(":")[0]
    if source is not None and ":" in spec:
        module(name, source)
    t = TrainingConfig(task="regression", pipeline=spec)
    with pytest.raises(TrainingError, match=message):
        build_custom(t, SCHEMA, tmp_path)


def test_factory_resolves_from_the_python_path_too():
    factory = load_factory("sklearn.pipeline:make_pipeline", None)
    assert callable(factory)


def test_train_refuses_an_unresolvable_factory_before_reading_any_data(make_config):
    from training import train

    cfg = make_config(training={"pipeline": "byom_nowhere:make", "data_path": "missing.csv"})
    with pytest.raises(TrainingError, match=r"module 'byom_nowhere' cannot be imported"):
        train(cfg, progress=False)
