"""``streamscore models ...`` (the ``models`` group) as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.models_cli import models
from model_store import ModelStore
from tests.model_store.factories import MODEL_NAME, flip_byte, register

CONFIG = f"""
[model_store]
root = "models"
model_name = "{MODEL_NAME}"

[kafka]
bootstrap_servers = "127.0.0.1:1"   # nothing listens: alias-move notices are skipped at once
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def store(config: Path) -> ModelStore:
    """Two versions in the store the config names (relative root: next to the config file)."""
    store = ModelStore(config.parent / "models", MODEL_NAME)
    register(store)
    register(store, metrics={"accuracy": 0.95, "roc_auc": 0.98765})
    return store


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(models, [*args, "--config", str(config)])


def test_list_shows_versions_key_metrics_and_aliases(config, store):
    store.promote(1)
    result = run(config, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    [row1] = [line for line in lines if line.strip("│ ").startswith("1 ")]
    [row2] = [line for line in lines if line.strip("│ ").startswith("2 ")]
    assert "0.9712" in row1 and "0.9945" in row1 and "production" in row1
    assert "0.9877" in row2 and "candidate" in row2
    assert "roc_auc" in result.output and "f1" in result.output


def test_list_json_is_machine_readable(config, store):
    result = run(config, "list", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert [d["version"] for d in data] == [1, 2]
    assert [d["aliases"] for d in data] == [[], ["candidate"]]
    assert data[1]["metrics"]["roc_auc"] == 0.98765


def test_list_of_an_empty_store_says_how_to_fill_it(config):
    result = run(config, "list")
    assert result.exit_code == 0 and "no versions of cancer" in result.output
    assert "streamscore train" in result.output
    assert json.loads(run(config, "list", "--json").output) == []


def test_show_by_alias_prints_the_manifest(config, store):
    result = run(config, "show", "candidate")
    assert result.exit_code == 0, result.output
    assert "version: 2" in result.output and "aliases: candidate" in result.output
    assert "mean_radius" in result.output and "roc_auc=0.9877" in result.output


def test_show_json_is_the_stored_manifest(config, store):
    result = run(config, "show", "1", "--json")
    assert json.loads(result.output) == store.manifest(1).to_dict()


def test_show_unknown_version_exits_2_and_lists_what_exists(config, store):
    result = run(config, "show", "9")
    assert result.exit_code == 2
    assert "error: cancer has no version 9 (versions: 1, 2)" in result.output


def test_promote_rollback_and_history(config, store):
    result = run(config, "promote", "1")
    assert result.exit_code == 0 and "production: (unset) -> v1" in result.output
    result = run(config, "promote", "2", "--reason", "better [roc_auc]")
    assert result.exit_code == 0 and "production: v1 -> v2" in result.output
    result = run(config, "rollback", "--reason", "alerts")
    assert result.exit_code == 0 and "production: v2 -> v1 (rolled back)" in result.output
    assert store.aliases()["production"] == 1
    history = run(config, "history", "--alias", "production")
    assert history.exit_code == 0
    assert "rollback" in history.output and "better [roc_auc]" in history.output
    assert "candidate" not in history.output
    assert "candidate" in run(config, "history").output


def test_promote_and_rollback_follow_the_configured_alias(config, store):
    config.write_text(CONFIG.replace("[kafka]", 'alias = "live"\n\n[kafka]'))
    assert run(config, "promote", "2").exit_code == 0
    assert store.aliases() == {"candidate": 2, "live": 2}
    assert run(config, "promote", "1", "--alias", "shadow").exit_code == 0
    assert store.aliases()["shadow"] == 1


def test_promote_a_missing_version_exits_2_and_changes_nothing(config, store):
    result = run(config, "promote", "42")
    assert result.exit_code == 2
    assert "no version 42 (versions: 1, 2)" in result.output
    assert "production" not in store.aliases() and store.history("production") == []


def test_rollback_without_history_exits_2_with_advice(config, store):
    run(config, "promote", "1")
    result = run(config, "rollback")
    assert result.exit_code == 2
    assert "no earlier version to roll back to" in result.output
    assert "streamscore models promote" in result.output
    assert store.aliases()["production"] == 1


def test_verify_passes_then_fails_with_exit_2_on_a_tampered_artifact(config, store):
    result = run(config, "verify")
    assert result.exit_code == 0 and result.output.count("ok") == 2
    flip_byte(store.folder / "2" / "model.joblib")
    result = run(config, "verify")
    assert result.exit_code == 2 and "FAILED" in result.output


def test_python_dash_m_model_store_runs_the_group(config, store):
    result = subprocess.run(
        [sys.executable, "-m", "model_store", "list", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [d["version"] for d in json.loads(result.stdout)] == [1, 2]
