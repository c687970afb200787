"""`streamscore models ...` as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from model_store import ModelStore
from streamscore.cli import main
from tests.model_store.test_store import register


@pytest.fixture
def setup(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text(
        '[model_store]\nroot = "models"\nmodel_name = "iris"\n'
        '[kafka]\nbootstrap_servers = "127.0.0.1:1"\n'
    )
    store = ModelStore(tmp_path / "models", "iris")
    register(store)
    register(store)
    return config, store


def run(config: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(config), "models", *args])


def test_models_list_shows_versions_metrics_and_aliases(setup):
    config, store = setup
    store.promote(1)
    result = run(config, "list")
    assert result.exit_code == 0, result.output
    assert "production" in result.output and "candidate" in result.output
    assert "0.9000" in result.output


def test_models_list_json_is_machine_readable(setup):
    import json

    config, _ = setup
    data = json.loads(run(config, "list", "--json").output)
    assert [d["version"] for d in data] == [1, 2]
    assert data[1]["aliases"] == ["candidate"]


def test_models_promote_rollback_and_history(setup):
    config, store = setup
    assert run(config, "promote", "1").exit_code == 0
    result = run(config, "promote", "2", "--reason", "better")
    assert "production: v1 -> v2" in result.output
    result = run(config, "rollback")
    assert result.exit_code == 0 and "v2 -> v1" in result.output
    assert store.aliases()["production"] == 1
    history = run(config, "history")
    assert "rollback" in history.output and "better" in history.output


def test_models_promote_missing_version_exits_2_with_message(setup):
    config, store = setup
    result = run(config, "promote", "42")
    assert result.exit_code == 2
    assert "no version 42" in result.output
    assert "production" not in store.aliases()


def test_models_rollback_without_history_exits_2(setup):
    config, _ = setup
    result = run(config, "rollback")
    assert result.exit_code == 2 and "no earlier version" in result.output


def test_models_show_by_alias(setup):
    config, _ = setup
    result = run(config, "show", "candidate")
    assert result.exit_code == 0 and "version: 2" in result.output and "f0:float" in result.output


def test_models_verify_fails_on_tampering(setup):
    config, store = setup
    assert run(config, "verify").exit_code == 0
    (store.folder / "2" / "model.joblib").write_bytes(b"x")
    result = run(config, "verify")
    assert result.exit_code == 2 and "FAILED" in result.output
