"""The gate runs [training] examples on the fitted candidate; any failure keeps it a candidate."""

from __future__ import annotations

import pytest

from model_store import ModelStore
from model_store.examples import EXAMPLES_FILE
from streamscore.exceptions import TrainingError
from tests.example_cases import (
    CLASSIFIER_KINDS,
    CLEAR_BENIGN,
    classifier_case,
    range_case,
    row_event,
    write_examples,
)
from training import export_demo_data, train
from training.run import GateRefused


def test_a_candidate_passing_every_kind_is_promoted_with_its_examples_stored(make_config, tmp_path):
    path = write_examples(
        tmp_path / "examples.jsonl", [classifier_case(k, passing=True) for k in CLASSIFIER_KINDS]
    )
    cfg = make_config(training={"examples": "examples.jsonl"})
    export_demo_data(cfg)
    result = train(cfg, progress=False)
    assert result.promoted
    [check] = [c for c in result.verdict.checks if c.kind == "example"]
    assert check.passed and check.detail == "3 of 3 examples passed"
    store = ModelStore.from_config(cfg)
    assert store.read_file(result.manifest.version, EXAMPLES_FILE) == path.read_bytes()


@pytest.mark.parametrize("kind", CLASSIFIER_KINDS)
def test_a_candidate_failing_one_example_is_refused_naming_expected_and_actual(
    make_config, tmp_path, kind
):
    write_examples(
        tmp_path / "examples.jsonl",
        [
            *(classifier_case(k, passing=True) for k in CLASSIFIER_KINDS),
            classifier_case(kind, passing=False),
        ],
    )
    cfg = make_config(training={"examples": "examples.jsonl"})
    export_demo_data(cfg)
    with pytest.raises(GateRefused) as refused:
        train(cfg, progress=False)
    result = refused.value.result
    assert not result.promoted
    [failed] = [c for c in result.verdict.checks if not c.passed]
    assert failed.kind == "example"
    expected = classifier_case(kind, passing=False)
    assert failed.detail.startswith(f"example '{expected['name']}' (line 4): FAILED: expected ")
    assert ", got " in failed.detail
    assert failed.detail in str(refused.value)
    assert EXAMPLES_FILE in result.manifest.files  # registered as a candidate, with its examples


@pytest.mark.parametrize("passing", [True, False], ids=["passing", "failing"])
def test_the_range_kind_at_the_gate_of_a_regressor(make_config, tmp_path, passing):
    low, high = (-1.0, 2.0) if passing else (10.0, 20.0)
    write_examples(tmp_path / "ex.jsonl", [range_case(row_event(CLEAR_BENIGN), low, high, "r")])
    cfg = make_config(
        training={
            "examples": "ex.jsonl",
            "task": "regression",
            "estimator": "sklearn.linear_model.Ridge",
            "estimator_params": {},
            "gate": {"min": {}, "max": {}, "compare_metric": ""},
        }
    )
    export_demo_data(cfg)
    if passing:
        assert train(cfg, progress=False).promoted
        return
    with pytest.raises(
        GateRefused,
        match=r"example 'r' \(line 1\): FAILED: expected prediction "
        r">= 10 and prediction <= 20, got prediction [0-9.]+$",
    ):
        train(cfg, progress=False)


def test_a_malformed_examples_file_stops_training_before_anything_is_registered(
    make_config, tmp_path
):
    (tmp_path / "examples.jsonl").write_text('{"event": {}, "expect": {"klass": 1}}\n')
    cfg = make_config(training={"examples": "examples.jsonl"})
    export_demo_data(cfg)
    with pytest.raises(TrainingError, match=r"\[training\] examples: .*examples.jsonl:1: "):
        train(cfg, progress=False)
    assert ModelStore.from_config(cfg).versions() == []


def test_the_examples_path_resolves_against_the_config_folder_and_empty_means_none(
    make_config, tmp_path
):
    assert make_config(training={"examples": "cases/ex.jsonl"}).training.examples == (
        tmp_path / "cases" / "ex.jsonl"
    )
    assert make_config(training={"examples": ""}).training.examples is None
    assert make_config().training.examples is None
