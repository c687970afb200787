"""``streamscore models test REF``: a version's examples, as a worker runs them at load."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sklearn.datasets import load_breast_cancer

from app.examples_cli import models
from model_store import ModelStore
from model_store.examples import EXAMPLES_FILE
from streamscore import jsonio
from tests.example_cases import (
    CLASSIFIER_KINDS,
    CLEAR_MALIGNANT,
    classifier_case,
    range_case,
    row_event,
    write_examples,
)
from tests.model_store.factories import MODEL_NAME, register, register_regressor

CONFIG = f"""
[model_store]
root = "models"
model_name = "{MODEL_NAME}"

[kafka]
bootstrap_servers = "127.0.0.1:1"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def store(config: Path) -> ModelStore:
    return ModelStore(config.parent / "models", MODEL_NAME)


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(models, ["test", *args, "--config", str(config)])


def stored(*lines) -> dict[str, bytes]:
    return {EXAMPLES_FILE: b"".join(jsonio.dumps(line) + b"\n" for line in lines)}


@pytest.mark.parametrize("kind", CLASSIFIER_KINDS)
@pytest.mark.parametrize("passing", [True, False], ids=["passing", "failing"])
def test_each_classifier_kind_exits_0_when_it_passes_and_3_when_it_fails(
    config, store, kind, passing
):
    case = classifier_case(kind, passing=passing)
    register(store, files=stored(case))
    result = run(config, "candidate")
    assert result.exit_code == (0 if passing else 3), result.output
    assert case["name"] in result.output
    assert ("1 of 1 examples passed" if passing else "1 of 1 examples failed") in result.output


@pytest.mark.parametrize("passing", [True, False], ids=["passing", "failing"])
def test_the_range_kind_on_a_regressor(config, store, passing):
    radius = float(load_breast_cancer().data[CLEAR_MALIGNANT, 0])
    low, high = (radius - 2, radius + 2) if passing else (radius + 10, radius + 20)
    case = range_case(row_event(CLEAR_MALIGNANT, drop_first=True), low, high, "radius")
    manifest = register_regressor(store)
    examples = write_examples(config.parent / "ex.jsonl", [case])
    result = run(config, str(manifest.version), "--examples", str(examples))
    assert result.exit_code == (0 if passing else 3), result.output
    assert "FAILED" not in result.output if passing else "FAILED" in result.output


def test_a_failure_lists_each_failed_example_with_expected_and_actual(config, store):
    register(
        store,
        files=stored(
            classifier_case("class", passing=False),
            classifier_case("probability", passing=True),
            classifier_case("dead_letter", passing=False),
        ),
    )
    result = run(config, "1")
    assert result.exit_code == 3
    summary = " ".join(result.output.split())
    assert "2 of 3 examples failed on cancer v1" in summary
    assert "'class failing' (line 1): FAILED: expected class 1, got prediction 0" in summary
    assert "expected dead-lettered at stage schema, got prediction 1" in summary


def test_a_version_without_examples_says_how_to_add_them(config, store):
    register(store)
    result = run(config, "candidate")
    assert result.exit_code == 0
    assert "has no examples stored with it" in result.output
    assert "[training] examples" in result.output
