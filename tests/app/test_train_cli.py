"""``train`` and ``demo-data`` on the command line: output and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from app.train_cli import demo_data, group, train
from model_store import ModelStore

STRICT_GATE = {"min": {"roc_auc": 1.1}, "compare_metric": ""}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner, cfg, *args):
    return runner.invoke(group, ["--config", str(cfg.source), *args])


def test_cli_demo_data_writes_both_files(runner, make_config):
    cfg = make_config()
    result = invoke(runner, cfg, "demo-data")
    assert result.exit_code == 0, result.output
    assert "(455 rows)" in result.output and "(114 events)" in result.output
    assert cfg.training.data_path.is_file() and cfg.demo.events_path.is_file()


def test_cli_train_promotes_and_prints_metrics_and_verdict(runner, cfg):
    result = invoke(runner, cfg, "train")
    assert result.exit_code == 0, result.output
    for text in ("rows kept: 455", "roc_auc", "min roc_auc", "quality gate passed"):
        assert text in result.output
    assert "promoted breast-cancer v1 to 'production'" in result.output
    assert ModelStore.from_config(cfg).aliases()["production"] == 1


def test_cli_train_gate_failure_exits_3_and_keeps_production(runner, cfg, make_config):
    assert invoke(runner, cfg, "train").exit_code == 0
    strict = make_config("strict.toml", training={"gate": STRICT_GATE})
    result = invoke(runner, strict, "train")
    assert result.exit_code == 3, result.output
    assert "FAIL" in result.output and "roc_auc" in result.output
    assert "gate failed: breast-cancer v2 stays a candidate (production stays v1)" in result.output
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 2, "production": 1}


def test_cli_train_no_promote_only_registers(runner, cfg):
    result = invoke(runner, cfg, "train", "--no-promote")
    assert result.exit_code == 0, result.output
    assert "registered breast-cancer v1 as a candidate" in result.output
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 1}


def test_cli_train_data_option_reads_another_file(runner, cfg, tmp_path):
    moved = tmp_path / "moved.csv"
    cfg.training.data_path.rename(moved)
    result = invoke(runner, cfg, "train", "--data", str(moved))
    assert result.exit_code == 0, result.output
    manifest = ModelStore.from_config(cfg).manifest(1)
    assert manifest.data is not None and manifest.data.path == str(moved)


def test_cli_train_data_problem_exits_2_with_the_message(runner, make_config):
    cfg = make_config()
    result = invoke(runner, cfg, "train")
    assert result.exit_code == 2
    assert "error: training data" in result.output and "does not exist" in result.output


def test_cli_bad_config_exits_2_naming_the_key(runner, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[training]\ntest_size = 2\n")
    result = runner.invoke(group, ["--config", str(path), "train"])
    assert result.exit_code == 2
    assert "test_size" in result.output


def test_cli_commands_are_exported_for_the_top_level_command():
    assert train.name == "train" and demo_data.name == "demo-data"
    params = {p.name for p in train.params}
    assert {"no_promote", "data_path", "config_path"} <= params


def test_python_dash_m_training_lists_both_commands():
    result = subprocess.run(
        [sys.executable, "-m", "training", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "demo-data" in result.stdout
