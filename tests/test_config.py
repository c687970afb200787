"""config.toml → frozen typed settings: defaults, paths, environment overrides, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from streamscore.config import Config, Secret, load_config
from streamscore.exceptions import ConfigError

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config.toml"


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_repository_config_loads_and_matches_documented_defaults():
    cfg = load_config(REPO_CONFIG, environ={})
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert cfg.kafka.partitions == 4
    assert cfg.model_store.alias == "production"
    assert cfg.training.gate.min == {"roc_auc": 0.95, "accuracy": 0.9}


def test_repository_config_sets_every_key_explicitly():
    """Every knob is visible in config.toml: no setting hides in code."""
    import tomllib

    raw = tomllib.loads(REPO_CONFIG.read_text())

    def missing(cls, table, prefix):
        out = []
        for f in dataclasses.fields(cls):
            if f.name == "source":
                continue
            if dataclasses.is_dataclass(f.type if not isinstance(f.type, str) else None):
                continue
            value = getattr(cls(), f.name)
            if dataclasses.is_dataclass(value):
                out += missing(type(value), table.get(f.name, {}), f"{prefix}{f.name}.")
            elif f.name not in table:
                out.append(prefix + f.name)
        return out

    assert missing(Config, raw, "") == []


def test_empty_file_gives_defaults_with_paths_beside_the_file(tmp_path):
    cfg = load_config(write(tmp_path, ""), environ={})
    assert cfg.kafka == Config().kafka
    assert cfg.worker.max_batch_records == Config().worker.max_batch_records
    assert cfg.model_store.root == tmp_path / "var/models"


def test_relative_paths_resolve_against_the_config_folder_not_cwd(tmp_path, monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder, '[model_store]\nroot = "models"\n[worker]\nlog_dir = "/abs/log"\n')
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path, environ={})
    assert cfg.model_store.root == folder / "models"
    assert cfg.worker.log_dir == Path("/abs/log")


def test_env_overrides_a_key_with_type_checking(tmp_path):
    path = write(tmp_path, "[kafka]\npartitions = 4\n")
    cfg = load_config(
        path,
        environ={
            "STREAMSCORE__KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "STREAMSCORE__KAFKA__PARTITIONS": "12",
            "STREAMSCORE__HTTP__ENABLED": "false",
            "STREAMSCORE__WORKER__PASSTHROUGH": '["a", "b"]',
            "STREAMSCORE__TRAINING__GATE__TOLERANCE": "0.05",
            "STREAMSCORE__TRAINING__GATE__MIN": "{ roc_auc = 0.8 }",
            "UNRELATED": "x",
        },
    )
    assert cfg.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert cfg.kafka.partitions == 12
    assert cfg.http.enabled is False
    assert cfg.worker.passthrough == ["a", "b"]
    assert cfg.training.gate.tolerance == 0.05
    assert cfg.training.gate.min == {"roc_auc": 0.8}


def test_env_override_with_wrong_type_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ""), environ={"STREAMSCORE__KAFKA__PARTITIONS": "many"})
    message = str(err.value)
    assert "[kafka] partitions = 'many'" in message
    assert "STREAMSCORE__KAFKA__PARTITIONS" in message
    assert "a whole number" in message


def test_env_override_of_unknown_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'partitons'.*known keys:"):
        load_config(write(tmp_path, ""), environ={"STREAMSCORE__KAFKA__PARTITONS": "3"})


def test_config_file_named_by_environment(tmp_path, monkeypatch):
    path = write(tmp_path, '[kafka]\ngroup_id = "from-env-file"\n', "other.toml")
    monkeypatch.setenv("STREAMSCORE_CONFIG", str(path))
    assert load_config().kafka.group_id == "from-env-file"


def test_missing_file_says_how_to_point_at_one(tmp_path):
    with pytest.raises(
        ConfigError, match="does not exist: pass --config PATH or set STREAMSCORE_CONFIG"
    ):
        load_config(tmp_path / "nope.toml", environ={})


def test_invalid_toml_is_an_error_naming_the_file(tmp_path):
    path = write(tmp_path, "[kafka\n")
    with pytest.raises(ConfigError, match=r"not valid TOML"):
        load_config(path, environ={})


def test_unknown_key_names_file_section_key_and_known_keys(tmp_path):
    path = write(tmp_path, "[worker]\nmax_batch = 10\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    message = str(err.value)
    assert str(path) in message
    assert "unknown key 'max_batch' in [worker]" in message
    assert "max_batch_records" in message


def test_unknown_section_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'wroker' in top level"):
        load_config(write(tmp_path, "[wroker]\n"), environ={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[kafka]\npartitions = "4"\n',
            "[kafka] partitions = '4' is invalid: expected a whole number",
        ),
        ("[kafka]\npartitions = 0\n", "[kafka] partitions = 0 is invalid: expected a value >= 1"),
        (
            "[training]\ntest_size = 1.5\n",
            "[training] test_size = 1.5 is invalid: expected a value <= 0.99",
        ),
        ('[worker]\nextra_fields = "drop"\n', "expected one of 'ignore', 'reject'"),
        ("[http]\nenabled = 1\n", "[http] enabled = 1 is invalid: expected true or false"),
        ('[worker]\npassthrough = "id"\n', "expected a list"),
    ],
)
def test_wrong_values_are_errors_with_value_and_what_is_allowed(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), environ={})
    assert expected in str(err.value)


def test_dependent_settings_are_checked_together(tmp_path):
    text = "[kafka]\nsession_timeout_ms = 3000\nheartbeat_interval_ms = 3000\n"
    with pytest.raises(
        ConfigError,
        match=r"heartbeat_interval_ms \(3000\) must be lower than session_timeout_ms \(3000\)",
    ):
        load_config(write(tmp_path, text), environ={})


def test_topics_must_differ(tmp_path):
    text = '[kafka]\ninput_topic = "x"\noutput_topic = "x"\n'
    with pytest.raises(ConfigError, match=r"four different topics"):
        load_config(write(tmp_path, text), environ={})


def test_gate_metrics_must_be_known(tmp_path):
    with pytest.raises(ConfigError, match=r"min.auc is not a metric"):
        load_config(write(tmp_path, "[training.gate]\nmin = { auc = 0.9 }\n"), environ={})


def test_secrets_never_show_in_repr_or_dict(tmp_path):
    text = (
        '[kafka]\nsecurity_protocol = "SASL_SSL"\nsasl_mechanism = "PLAIN"\n'
        'sasl_username = "u"\nsasl_password = "hunter2"\n[http]\nadmin_token = "t0ken"\n'
    )
    cfg = load_config(write(tmp_path, text), environ={})
    assert "hunter2" not in repr(cfg) and "t0ken" not in repr(cfg)
    assert "hunter2" not in str(cfg.to_dict()) and "t0ken" not in str(cfg.to_dict())
    assert cfg.kafka.sasl_password.reveal() == "hunter2"
    assert cfg.kafka.client_security()["sasl_plain_password"] == "hunter2"
    assert isinstance(cfg.http.admin_token, Secret)


def test_config_is_frozen(tmp_path):
    cfg = load_config(write(tmp_path, ""), environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.kafka.partitions = 2  # type: ignore[misc]
