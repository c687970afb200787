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
from streamscore.config import load_config
from tests.model_store.conftest import BACKENDS
from tests.model_store.factories import MODEL_NAME, register
from tests.object_storage import Objects

CONFIG = f"""
[model_store]
model_name = "{MODEL_NAME}"

[kafka]
bootstrap_servers = "127.0.0.1:1"   # nothing listens: alias-move notices are skipped at once
"""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every CLI test runs on a folder store and on S3, as the model-store suite does."""
    return str(request.param)


@pytest.fixture
def objects(request: pytest.FixtureRequest, store: ModelStore, backend: str) -> Objects:
    server = request.getfixturevalue("s3_server") if backend == "s3" else None
    return Objects(store, server)


@pytest.fixture
def config(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Path:
    """A config naming this backend's store (folder: relative, next to the config file)."""
    path = tmp_path / "config.toml"
    if backend == "folder":
        store = 'root = "models"\n'
    else:
        server = request.getfixturevalue("s3_server")
        store = (
            f'root = "{request.getfixturevalue("s3_root")}"\nendpoint_url = "{server.endpoint}"\n'
            f'region = "us-east-1"\ncache_dir = "cache"\n'
        )
    path.write_text(CONFIG.replace("[model_store]\n", "[model_store]\n" + store))
    return path


@pytest.fixture
def store(config: Path) -> ModelStore:
    """Two versions in the store the config names."""
    store = ModelStore.from_config(load_config(config, environ={}))
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
    config.write_text(config.read_text().replace("[kafka]", 'alias = "live"\n\n[kafka]'))
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


def test_verify_passes_then_fails_with_exit_2_on_a_tampered_artifact(config, store, objects):
    result = run(config, "verify")
    assert result.exit_code == 0 and result.output.count("ok") == 2
    objects.flip_byte("2/model.skops")
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


def test_promote_with_the_object_store_unreachable_exits_2_saying_so(tmp_path):
    from broker import free_port

    path = tmp_path / "config.toml"
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens
    path.write_text(
        CONFIG.replace(
            "[model_store]\n",
            f'[model_store]\nroot = "s3://streamscore-tests/x"\nendpoint_url = "{endpoint}"\n'
            f'region = "us-east-1"\nrequest_timeout_ms = 500\n',
        )
    )
    result = CliRunner(env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}).invoke(
        models, ["promote", "1", "--config", str(path)]
    )
    assert result.exit_code == 2
    assert f"object store {endpoint} unreachable" in result.output
    assert "check [model_store] endpoint_url" in result.output


def test_show_prints_live_metrics_beside_held_out_from_the_monitor_state(config, store):
    from monitor.joinstate import JoinState, Label, Prediction

    state = JoinState(config.parent / "var/monitor/join.sqlite")
    state.apply(
        [Prediction(f"p{i}", 2, 1_000, 1, {"0": 0.2, "1": 0.8}) for i in range(4)],
        [Label(f"p{i}", 1 if i < 3 else 0, 2_000) for i in range(3)],
        {},
    )
    state.close()
    result = run(config, "show", "2")
    assert result.exit_code == 0, result.output
    assert "live: accuracy=1.0000 (held-out 0.9500)" in result.output
    assert "3 labelled of 4 predictions (coverage 75%)" in result.output
    assert "live: -" in run(config, "show", "1").output


def test_show_prints_the_shadows_live_metrics_beside_productions_on_the_same_ids(config, store):
    from monitor.joinstate import JoinState, Label, Prediction

    config.write_text(
        config.read_text() + '\n[worker]\nshadow_alias = "candidate"\nshadow_fraction = 0.5\n'
    )
    store.promote(1)
    labels = [Label(f"p{i}", 1, 2_000) for i in range(4)]
    for name, version, predicted in (("shadow", 2, 1), ("paired", 1, 0)):
        state = JoinState(config.parent / f"var/monitor/join.{name}.sqlite")
        state.apply([Prediction(f"p{i}", version, 1_000, predicted) for i in range(4)], labels, {})
        state.close()
    for ref in ("2", "1"):  # on the candidate's page and on production's
        result = run(config, "show", ref)
        assert result.exit_code == 0, result.output
        assert (
            "shadow: shadow v2 (candidate, 50% of ids): accuracy=1.0000 on 4 labelled; "
            "production v1 on the same ids: accuracy=0.0000 on 4 labelled"
        ) in " ".join(result.output.split())


def test_promote_whose_notice_is_not_acknowledged_exits_2_naming_the_wait(tmp_path, config, store):
    import socket

    with socket.socket() as silent:  # accepts connections, never answers Kafka
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        path = tmp_path / "silent.toml"
        path.write_text(
            config.read_text().replace("127.0.0.1:1", f"127.0.0.1:{silent.getsockname()[1]}")
            + 'control_topic = "ctl"\n'
        )
        result = run(path, "promote", "1")
    assert result.exit_code == 2, result.output
    assert "production moved to v1, but Kafka at 127.0.0.1:" in result.output
    assert "did not acknowledge the notice on ctl within 3 s" in result.output
    assert store.aliases()["production"] == 1  # the move itself happened
