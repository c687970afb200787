"""config.toml → frozen typed settings: defaults, paths, environment overrides, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from streamscore.config import Config, Secret, config_from_dict, derive_names, load_config
from streamscore.exceptions import ConfigError

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.toml"


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
    assert cfg.kafka == derive_names(Config()).kafka
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


def test_gate_metrics_must_belong_to_the_task(tmp_path):
    text = '[training]\ntask = "regression"\n[training.gate]\nmin = { roc_auc = 0.9 }\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={})
    assert str(caught.value).endswith(
        "[training.gate] min.roc_auc: roc_auc is a classification metric but [training] task = "
        "'regression'; gate a regression model on rmse, mae, r2 (or set task = 'classification')"
    )


def test_the_shipped_gate_follows_the_task_so_regression_is_judged_on_regression_metrics(tmp_path):
    from streamscore.config import DEFAULT_GATES

    shipped = load_config(REPO_CONFIG, environ={})
    assert shipped.training.gate == DEFAULT_GATES["classification"]
    regression = load_config(REPO_CONFIG, environ={"STREAMSCORE__TRAINING__TASK": "regression"})
    assert regression.training.gate == DEFAULT_GATES["regression"]
    assert regression.training.gate.compare_metric == "r2"
    assert set(regression.training.gate.min) == {"r2"}


def test_a_gate_of_ones_own_is_kept_whatever_the_task(tmp_path):
    text = '[training]\ntask = "regression"\n[training.gate]\nmax = { rmse = 3.0 }\n'
    cfg = load_config(write(tmp_path, text), environ={})
    assert cfg.training.gate.max == {"rmse": 3.0} and cfg.training.gate.min == {}
    empty = load_config(write(tmp_path, '[training]\ntask = "regression"\n'), environ={})
    assert empty.training.gate.min == {} and empty.training.gate.compare_metric == ""


def test_regression_gets_a_regression_default_estimator(tmp_path):
    cfg = load_config(write(tmp_path, '[training]\ntask = "regression"\n'), environ={})
    assert cfg.training.estimator == "sklearn.linear_model.Ridge"
    assert cfg.to_dict()["training"]["estimator"] == "sklearn.linear_model.Ridge"


def test_worker_id_field_defaults_to_the_training_id_column(tmp_path):
    cfg = load_config(write(tmp_path, '[training]\nid_column = "customer"\n'), environ={})
    assert cfg.worker.id_field == "customer"
    text = '[training]\nid_column = "customer"\n[worker]\nid_field = "event_id"\n'
    assert load_config(write(tmp_path, text), environ={}).worker.id_field == "event_id"


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


# --------------------------------------------------------------------------- more of the contract


@pytest.mark.parametrize(
    ("variable", "text", "section", "key", "expected"),
    [
        ("STREAMSCORE__HTTP__ENABLED", "yes", "http", "enabled", True),
        ("STREAMSCORE__HTTP__ENABLED", "0", "http", "enabled", False),
        ("STREAMSCORE__KAFKA__PARTITIONS", " 1_000 ", "kafka", "partitions", 1000),
        ("STREAMSCORE__WORKER__PASSTHROUGH", "[]", "worker", "passthrough", []),
        ("STREAMSCORE__KAFKA__GROUP_ID", "blue", "kafka", "group_id", "blue"),
        ("STREAMSCORE__TRAINING__SEED", "7", "training", "seed", 7),
    ],
)
def test_env_values_are_parsed_as_the_declared_type(
    tmp_path, variable, text, section, key, expected
):
    cfg = load_config(write(tmp_path, ""), environ={variable: text})
    assert getattr(getattr(cfg, section), key) == expected


def test_env_override_beats_the_file(tmp_path):
    path = write(tmp_path, '[kafka]\nbootstrap_servers = "file:9092"\n')
    env = {"STREAMSCORE__KAFKA__BOOTSTRAP_SERVERS": "env:9092"}
    assert load_config(path, environ=env).kafka.bootstrap_servers == "env:9092"


@pytest.mark.parametrize(
    ("variable", "text", "expected"),
    [
        ("STREAMSCORE__HTTP__ENABLED", "maybe", "expected true or false"),
        ("STREAMSCORE__WORKER__PASSTHROUGH", "a,b", 'expected a TOML list like ["a", "b"]'),
        ("STREAMSCORE__KAFKA__PARTITIONS", "0", "expected a value >= 1"),
        ("STREAMSCORE__KAFKA__PARTITIONS", "2.5", "expected a whole number"),
        ("STREAMSCORE__TRAINING__GATE__TOLERANCE", "nan", "expected a finite number"),
        ("STREAMSCORE__WORKER__COMPRESSION", "brotli", "expected one of 'none', 'gzip'"),
    ],
)
def test_bad_env_values_name_the_variable_and_what_is_allowed(tmp_path, variable, text, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ""), environ={variable: text})
    assert f"(from {variable})" in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("STREAMSCORE__KAFAK__PARTITIONS", "unknown key 'kafak' in section [top level]"),
        ("STREAMSCORE__TRAINING__GATE__TOLERANSE", "unknown key 'toleranse' in section"),
        ("STREAMSCORE__KAFKA", "expected STREAMSCORE__SECTION__KEY"),
        ("STREAMSCORE__KAFKA__PARTITIONS__X", "'partitions' is not a section"),
    ],
)
def test_unknown_or_malformed_env_names_are_errors(tmp_path, variable, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, ""), environ={variable: "1"})
    assert variable in str(err.value)
    assert expected in str(err.value)


def test_unknown_env_key_lists_the_known_keys_of_its_section(tmp_path):
    env = {"STREAMSCORE__TRAINING__GATE__TOLERANSE": "0.1"}
    with pytest.raises(ConfigError, match=r"\[training.gate\]; known keys: compare_metric, max"):
        load_config(write(tmp_path, ""), environ=env)


def test_variables_without_the_prefix_are_ignored(tmp_path):
    env = {"STREAMSCORE_KAFKA__PARTITIONS": "x", "KAFKA_PARTITIONS": "x", "HOME": "/root"}
    assert load_config(write(tmp_path, ""), environ=env).kafka.partitions == 4


def test_unknown_key_in_a_nested_table(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'tolerence' in \[training.gate\]"):
        load_config(write(tmp_path, "[training.gate]\ntolerence = 0.1\n"), environ={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[worker]\npassthrough = ["a", 1]\n', "[worker] passthrough[1] = 1 is invalid"),
        ("[kafka]\npartitions = 4.0\n", "expected a whole number"),
        ("[kafka]\npartitions = true\n", "expected a whole number"),
        ('[training.gate]\nmin = { roc_auc = "high" }\n', "roc_auc = 'high' is invalid"),
        ("[kafka]\npartitions = 10001\n", "expected a value <= 10000"),
        ("[broker]\nport = 70000\n", "[broker] port = 70000 is invalid"),
        ('kafka = "x"\n', "[kafka] must be a table, got str"),
        ("[model_store]\nroot = 3\n", "[model_store] root = 3 is invalid: expected a string"),
    ],
)
def test_more_wrong_types_and_ranges(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), environ={})
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("kafka", "expected"),
    [
        (
            {"session_timeout_ms": 3000, "heartbeat_interval_ms": 4000},
            r"heartbeat_interval_ms \(4000\) must be lower than session_timeout_ms \(3000\)",
        ),
        (
            {"session_timeout_ms": 30000, "request_timeout_ms": 30000},
            r"request_timeout_ms \(30000\) must be larger than session_timeout_ms \(30000\)",
        ),
        ({"sasl_mechanism": "PLAIN"}, "needs security_protocol SASL_PLAINTEXT or SASL_SSL"),
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
    ],
)
def test_dependent_kafka_settings(tmp_path, kafka, expected):
    text = "[kafka]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in kafka.items())
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text), environ={})


def test_dependent_settings_are_checked_after_env_overrides(tmp_path):
    env = {"STREAMSCORE__KAFKA__HEARTBEAT_INTERVAL_MS": "9000"}
    with pytest.raises(ConfigError, match=r"heartbeat_interval_ms \(9000\) must be lower"):
        load_config(write(tmp_path, ""), environ=env)


def test_retry_backoff_bounds_are_checked_together(tmp_path):
    text = "[worker]\nretry_backoff_ms = 2000\nmax_retry_backoff_ms = 1000\n"
    with pytest.raises(ConfigError, match=r"max_retry_backoff_ms \(1000\) must be >= "):
        load_config(write(tmp_path, text), environ={})


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"config file {missing} does not exist"):
        load_config(missing, environ={})


def test_an_explicit_path_beats_streamscore_config(tmp_path, monkeypatch):
    chosen = write(tmp_path, '[kafka]\ngroup_id = "explicit"\n', "chosen.toml")
    other = write(tmp_path, '[kafka]\ngroup_id = "from-env"\n', "other.toml")
    monkeypatch.setenv("STREAMSCORE_CONFIG", str(other))
    assert load_config(chosen, environ={}).kafka.group_id == "explicit"


def test_without_a_path_or_variable_config_toml_in_the_cwd_is_used(tmp_path, monkeypatch):
    write(tmp_path, '[kafka]\ngroup_id = "cwd"\n')
    monkeypatch.delenv("STREAMSCORE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(environ={})
    assert cfg.kafka.group_id == "cwd"
    assert cfg.source == tmp_path / "config.toml"


def test_relative_paths_from_the_environment_also_resolve_against_the_config_folder(
    tmp_path, monkeypatch
):
    folder = tmp_path / "etc"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    env = {"STREAMSCORE__MODEL_STORE__ROOT": "store"}
    assert load_config(write(folder, ""), environ=env).model_store.root == folder / "store"


def test_home_in_paths_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = load_config(write(tmp_path, '[worker]\nlog_dir = "~/logs"\n'), environ={})
    assert cfg.worker.log_dir == tmp_path / "home" / "logs"


def test_secrets_from_the_environment_are_masked_too(tmp_path):
    env = {"STREAMSCORE__HTTP__ADMIN_TOKEN": "s3cret", "STREAMSCORE__KAFKA__SASL_PASSWORD": "pw1"}
    cfg = load_config(write(tmp_path, ""), environ=env)
    assert cfg.to_dict()["http"]["admin_token"] == "********"
    assert cfg.to_dict()["kafka"]["sasl_password"] == "********"
    assert "s3cret" not in repr(cfg) and "pw1" not in repr(cfg) and "s3cret" not in str(cfg)
    assert cfg.http.admin_token.reveal() == "s3cret"


def test_an_empty_secret_is_shown_as_empty():
    assert repr(Secret("")) == "Secret('')"
    assert not Secret("")
    assert Config().to_dict()["http"]["admin_token"] == ""


def test_to_dict_is_plain_json_ready_data(tmp_path):
    from streamscore import jsonio

    cfg = load_config(write(tmp_path, ""), environ={})
    data = cfg.to_dict()
    assert data["model_store"]["root"] == str(tmp_path / "var/models")
    assert jsonio.loads(jsonio.dumps(data)) == data


def test_with_overrides_replaces_fields_of_a_copy():
    from streamscore.config import with_overrides

    cfg = Config()
    changed = with_overrides(cfg, kafka={"input_topic": "other"}, worker={"processes": 3})
    assert (changed.kafka.input_topic, changed.worker.processes) == ("other", 3)
    assert cfg.kafka.input_topic == ""  # derived by the loader, not by Config()


# --------------------------------------------------------------------------- edge cases


def test_env_override_into_a_section_that_is_not_a_table_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "training = 5\n"), environ={"STREAMSCORE__TRAINING__SEED": "3"})


@pytest.mark.parametrize("name", ["has space", "a/b", ".."])
def test_topic_names_kafka_would_refuse_are_config_errors(tmp_path, name):
    with pytest.raises(ConfigError, match="input_topic"):
        load_config(write(tmp_path, f'[kafka]\ninput_topic = "{name}"\n'), environ={})


def test_config_package_exports_every_section_of_the_schema():
    import dataclasses

    import streamscore.config as package
    from streamscore.config import schema

    sections = {
        name
        for name, value in vars(schema).items()
        if isinstance(value, type) and dataclasses.is_dataclass(value) and not name.startswith("_")
    }
    assert sections <= set(package.__all__), sorted(sections - set(package.__all__))
    for name in package.__all__:
        assert getattr(package, name) is not None


# --------------------------------------------------------------------------- object storage


def test_model_store_root_takes_an_s3_url_as_written_and_cache_dir_resolves(tmp_path):
    text = (
        '[model_store]\nroot = "s3://models-bucket/team/prod/"\n'
        'endpoint_url = "http://127.0.0.1:8333"\nregion = "eu-west-1"\n'
    )
    store = load_config(write(tmp_path, text), environ={}).model_store
    assert store.root == "s3://models-bucket/team/prod" and store.is_object_store
    assert store.cache_dir == tmp_path / "var/cache/models"
    assert store.local_root == store.cache_dir  # where this host's lock files go
    assert (store.endpoint_url, store.region) == ("http://127.0.0.1:8333", "eu-west-1")


def test_model_store_root_from_the_environment_can_be_an_s3_url(tmp_path):
    env = {"STREAMSCORE__MODEL_STORE__ROOT": "s3://models-bucket"}
    cfg = load_config(write(tmp_path, ""), environ=env)
    assert cfg.model_store.root == "s3://models-bucket"


@pytest.mark.parametrize(
    "root", ["s3://", "s3://x", "s3://Upper/x", "gs://bucket/x", "s3://bucket name/x"]
)
def test_a_root_url_that_is_not_s3_bucket_prefix_is_an_error(tmp_path, root):
    with pytest.raises(ConfigError, match=r"\[model_store\] root = .* s3://bucket/prefix"):
        load_config(write(tmp_path, f'[model_store]\nroot = "{root}"\n'), environ={})


@pytest.mark.parametrize("key", ["endpoint_url", "region", "profile"])
def test_object_store_keys_on_a_folder_root_are_an_error(tmp_path, key):
    text = f'[model_store]\nroot = "models"\n{key} = "http://x:1"\n'
    with pytest.raises(ConfigError, match=rf"{key} = .* is for an object store, but root"):
        load_config(write(tmp_path, text), environ={})


def test_object_store_endpoint_must_be_an_http_url(tmp_path):
    text = '[model_store]\nroot = "s3://bucket1/p"\nendpoint_url = "127.0.0.1:8333"\n'
    with pytest.raises(ConfigError, match=r"endpoint_url = '127.0.0.1:8333' must be an http"):
        load_config(write(tmp_path, text), environ={})


def test_object_store_credentials_never_show_in_config_or_store(tmp_path, monkeypatch):
    from model_store import ModelStore

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    text = (
        '[model_store]\nroot = "s3://bucket1/p"\n'
        'endpoint_url = "http://user:pa55word@127.0.0.1:1"\n'
    )
    cfg = load_config(write(tmp_path, text), environ={})
    store = ModelStore.from_config(cfg)
    shown = " ".join([repr(cfg), str(cfg.to_dict()), repr(store), repr(store.storage)])
    for secret in ("AKIAEXAMPLEKEY", "s3cr3t-value", "pa55word"):
        assert secret not in shown
    assert "http://***@127.0.0.1:1" in repr(cfg.model_store)


def test_exactly_once_with_self_assigned_partitions_is_an_error_naming_both_keys(tmp_path):
    text = '[worker]\ndelivery = "exactly-once"\nassignment = "supervisor"\n'
    with pytest.raises(ConfigError, match=r'delivery = "exactly-once" needs \[worker\] assignment'):
        load_config(write(tmp_path, text), environ={})
    ok = '[worker]\ndelivery = "exactly-once"\nassignment = "group"\n'
    assert load_config(write(tmp_path, ok), environ={}).worker.delivery == "exactly-once"


# --------------------------------------------------------------------------- a second model


def test_second_model_in_three_keys_gets_its_own_topics_and_group(tmp_path):
    first = load_config(REPO_CONFIG, environ={})
    second = load_config(  # the repository's file with three keys changed
        REPO_CONFIG,
        environ={
            "STREAMSCORE__MODEL_STORE__MODEL_NAME": "iris",
            "STREAMSCORE__TRAINING__DATA_PATH": "var/data/iris.csv",
            "STREAMSCORE__HTTP__PORT": "8180",
        },
    )
    k = second.kafka
    assert (k.input_topic, k.output_topic, k.dead_letter_topic, k.control_topic, k.group_id) == (
        "streamscore.iris.events",
        "streamscore.iris.predictions",
        "streamscore.iris.dead-letters",
        "streamscore.iris.control",
        "streamscore-iris",
    )
    mine = {first.kafka.input_topic, first.kafka.output_topic, first.kafka.dead_letter_topic}
    assert mine.isdisjoint({k.input_topic, k.output_topic, k.dead_letter_topic})
    assert first.kafka.group_id == "streamscore-breast-cancer" != k.group_id
    assert first.kafka.control_topic != k.control_topic


def test_derived_names_yield_to_names_set_in_the_file(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            '[model_store]\nmodel_name = "iris"\n[kafka]\ninput_topic = "raw.iris"\n'
            'group_id = "iris-scorers"\n',
        ),
        environ={},
    )
    assert (cfg.kafka.input_topic, cfg.kafka.group_id) == ("raw.iris", "iris-scorers")
    assert cfg.kafka.output_topic == "streamscore.iris.predictions"


def test_model_name_that_makes_no_topic_name_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="is not a Kafka topic name"):
        load_config(write(tmp_path, '[model_store]\nmodel_name = "fraud model"\n'), environ={})


def test_max_message_bytes_and_poll_budget_out_of_range_name_the_key_and_the_range(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[worker]\nmax_message_bytes = 1000\n"))
    assert "[worker] max_message_bytes = 1000" in str(err.value)
    assert ">= 16384" in str(err.value)
    with pytest.raises(ConfigError, match=r"\[worker\] poll_budget_fraction = 1\.5.*<= 0\.9"):
        load_config(write(tmp_path, "[worker]\npoll_budget_fraction = 1.5\n"))


def test_demo_monitor_knobs_out_of_range_name_the_key_and_the_range(tmp_path):
    with pytest.raises(ConfigError, match=r"\[demo\] monitor_window_s = 0.*>= 1"):
        load_config(write(tmp_path, "[demo]\nmonitor_window_s = 0\n"), environ={})
    with pytest.raises(ConfigError, match=r"\[demo\] monitor_min_labels = 0.*>= 1"):
        load_config(write(tmp_path, "[demo]\nmonitor_min_labels = 0\n"), environ={})
    with pytest.raises(ConfigError, match=r"\[demo\] label_delay_ms = -1.*>= 0"):
        load_config(write(tmp_path, "[demo]\nlabel_delay_ms = -1\n"), environ={})
    demo = load_config(write(tmp_path, "[demo]\n"), environ={}).demo
    assert (demo.label_delay_ms, demo.monitor_window_s, demo.monitor_min_labels) == (1000, 3, 50)


def test_shadow_and_canary_knobs_out_of_range_or_inconsistent_name_the_key_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"\[worker\] shadow_fraction = 1\.5.*<= 1"):
        load_config(write(tmp_path, "[worker]\nshadow_fraction = 1.5\n"))
    with pytest.raises(ConfigError, match=r"\[worker\] canary_fraction = -0\.1.*>= 0"):
        load_config(write(tmp_path, "[worker]\ncanary_fraction = -0.1\n"))
    with pytest.raises(ConfigError, match=r"\[worker\] shadow_budget_ms = 0.*>= 1"):
        load_config(write(tmp_path, "[worker]\nshadow_budget_ms = 0\n"))
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, '[worker]\nshadow_alias = "production"\n'))
    assert "[worker] shadow_alias = 'production' is [model_store] alias" in str(err.value)
    assert "name the candidate's alias" in str(err.value)
    with pytest.raises(ConfigError, match="a version is either shadowed"):
        load_config(write(tmp_path, '[worker]\nshadow_alias = "c"\ncanary_alias = "c"\n'))
    with pytest.raises(ConfigError, match=r"shadow_topic \('streamscore\.demo\.predictions'\)"):
        load_config(
            write(
                tmp_path,
                '[model_store]\nmodel_name = "demo"\n'
                '[kafka]\nshadow_topic = "streamscore.demo.predictions"\n',
            )
        )


def test_shadow_topic_follows_the_model_name():
    cfg = config_from_dict({"model_store": {"model_name": "fraud"}}, environ={})
    assert cfg.kafka.shadow_topic == "streamscore.fraud.shadow"
    assert cfg.worker.shadow_alias == "" and cfg.worker.canary_fraction == 0.0
    assert cfg.monitor.auto_promote is False and cfg.monitor.auto_end_canary is False


def test_max_batches_in_flight_defaults_to_two_and_out_of_range_names_the_key(tmp_path):
    assert load_config(write(tmp_path, "")).worker.max_batches_in_flight == 2
    with pytest.raises(ConfigError, match=r"\[worker\] max_batches_in_flight = 0.*>= 1"):
        load_config(write(tmp_path, "[worker]\nmax_batches_in_flight = 0\n"))
