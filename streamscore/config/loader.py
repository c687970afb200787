"""Reading ``config.toml``: parse, apply environment overrides, build and check a :class:`Config`.

Unknown sections or keys are errors that name the file, the section and the key; settings that
depend on each other are checked together, with both values in the message.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from streamscore.config.coerce import coerce
from streamscore.config.env import ENV_CONFIG_FILE, apply_env, resolve_config_path
from streamscore.config.schema import KNOWN_METRICS, TASK_METRICS, Config, redact_url
from streamscore.exceptions import ConfigError

T = TypeVar("T")

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


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
        apply_env(data, environ, where)
    base = base_dir or (source.parent if source else Path.cwd())
    cfg = _build(Config, data, section="", where=where, base=base, extra={"source": source})
    cfg = _derived_defaults(cfg, data)
    cfg = derive_names(cfg)
    _check_dependent(cfg, where)
    return cfg


#: ``[kafka]`` key -> its name when left empty, from ``[model_store] model_name``.
DERIVED_NAMES = {
    "input_topic": "streamscore.{model}.events",
    "output_topic": "streamscore.{model}.predictions",
    "dead_letter_topic": "streamscore.{model}.dead-letters",
    "control_topic": "streamscore.{model}.control",
    "labels_topic": "streamscore.{model}.labels",
    "quality_topic": "streamscore.{model}.quality",
    "monitoring_topic": "streamscore.{model}.monitoring",
    "shadow_topic": "streamscore.{model}.shadow",
    "group_id": "streamscore-{model}",
}


def derive_names(cfg: Config) -> Config:
    """Fill the topics and the group left empty from the model name.

    A second model is then another ``model_name`` (plus its data and port): its workers get
    their own topics and group instead of silently joining the first model's. Names set in
    the file or the environment win.
    """
    model = cfg.model_store.model_name
    missing: dict[str, Any] = {
        key: pattern.format(model=model)
        for key, pattern in DERIVED_NAMES.items()
        if not getattr(cfg.kafka, key)
    }
    if not missing:
        return cfg
    return dataclasses.replace(cfg, kafka=dataclasses.replace(cfg.kafka, **missing))


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


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
            is_path = hint is Path or f.metadata.get("urls")
            if is_path and isinstance(default, Path) and not default.is_absolute():
                kwargs[name] = (base / default).resolve()  # defaults resolve like values
            continue
        key = f"{section}.{name}" if section else name
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, data[name], section=key, where=where, base=base)
            continue
        kwargs[name] = coerce(data[name], hint, f.metadata, key=key, where=where, base=base)
    return cls(**kwargs)


def _derived_defaults(cfg: Config, data: Mapping[str, Any]) -> Config:
    """Defaults that follow another setting: ``[worker] id_field`` is ``[training] id_column``
    unless set."""
    worker = data.get("worker")
    if isinstance(worker, Mapping) and "id_field" in worker:
        return cfg
    if cfg.worker.id_field == cfg.training.id_column:
        return cfg
    return dataclasses.replace(
        cfg, worker=dataclasses.replace(cfg.worker, id_field=cfg.training.id_column)
    )


def _check_dependent(cfg: Config, where: str) -> None:
    """Settings that are valid alone but not together."""
    _check_kafka(cfg, where)
    _check_model_store(cfg, where)
    _check_worker(cfg, where)
    _check_gate(cfg, where)
    _check_monitor(cfg, where)


def _check_monitor(cfg: Config, where: str) -> None:
    k, m = cfg.kafka, cfg.monitor
    for key in ("labels_topic", "quality_topic", "monitoring_topic", "shadow_topic"):
        topic = getattr(k, key)
        if not _TOPIC.match(topic) or topic in (".", ".."):
            raise ConfigError(
                f"{where}: [kafka] {key} = {topic!r} is not a Kafka topic name: use 1-249 "
                f"characters of letters, digits, '.', '_' and '-'"
            )
    topics = [
        k.input_topic,
        k.output_topic,
        k.dead_letter_topic,
        k.control_topic,
        k.labels_topic,
        k.quality_topic,
        k.monitoring_topic,
        k.shadow_topic,
    ]
    if len(set(topics)) != len(topics):
        raise ConfigError(
            f"{where}: [kafka] labels_topic ({k.labels_topic!r}), quality_topic "
            f"({k.quality_topic!r}), monitoring_topic ({k.monitoring_topic!r}) and shadow_topic "
            f"({k.shadow_topic!r}) must differ from each other and from the input, output, "
            f"dead-letter and control topics"
        )
    if m.group_id == k.group_id:
        raise ConfigError(
            f"{where}: [monitor] group_id = {m.group_id!r} is the workers' group: the monitor "
            f"needs a consumer group of its own"
        )
    if m.drift_warn <= 0:
        raise ConfigError(
            f"{where}: [monitor] drift_warn = {m.drift_warn} would warn on every feature, even "
            f"one that matches its profile exactly: set it above 0 (default 0.1)"
        )
    if m.drift_warn >= m.drift_alert:
        raise ConfigError(
            f"{where}: [monitor] drift_warn ({m.drift_warn}) must be below drift_alert "
            f"({m.drift_alert}): lower drift_warn or raise drift_alert (defaults 0.1 and 0.25)"
        )
    if m.label_wait_s > m.label_ttl_s:
        raise ConfigError(
            f"{where}: [monitor] label_wait_s ({m.label_wait_s}) must be <= label_ttl_s "
            f"({m.label_ttl_s})"
        )


def _check_kafka(cfg: Config, where: str) -> None:
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


def _check_model_store(cfg: Config, where: str) -> None:
    m = cfg.model_store
    if m.max_retry_backoff_ms < m.retry_backoff_ms:
        raise ConfigError(
            f"{where}: [model_store] max_retry_backoff_ms ({m.max_retry_backoff_ms}) must be >= "
            f"retry_backoff_ms ({m.retry_backoff_ms})"
        )
    if not m.is_object_store:
        for name in ("endpoint_url", "region", "profile"):
            if getattr(m, name):
                raise ConfigError(
                    f"{where}: [model_store] {name} = {redact_url(getattr(m, name))!r} is for "
                    f"an object store, but root = {str(m.root)!r} is a folder; set root = "
                    f'"s3://bucket/prefix", or remove {name}'
                )
    if m.endpoint_url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", m.endpoint_url):
        raise ConfigError(
            f"{where}: [model_store] endpoint_url = {redact_url(m.endpoint_url)!r} must be an "
            f"http:// or https:// URL, e.g. http://127.0.0.1:8333"
        )


def _check_worker(cfg: Config, where: str) -> None:
    k = cfg.kafka
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
    if w.delivery == "exactly-once" and w.assignment == "supervisor":
        raise ConfigError(
            f'{where}: [worker] delivery = "exactly-once" needs [worker] assignment = '
            f"\"group\": a transaction's offsets are fenced by the consumer group's generation, "
            f"which processes that assign partitions to themselves do not join; set assignment "
            f'= "group" (on a real Kafka cluster) or delivery = "at-least-once"'
        )
    alias = cfg.model_store.alias
    for key in ("shadow_alias", "canary_alias"):
        value = getattr(w, key)
        if value and value == alias:
            raise ConfigError(
                f"{where}: [worker] {key} = {value!r} is [model_store] alias, the production "
                f"model itself; name the candidate's alias (e.g. 'candidate') or set it to ''"
            )
    if w.shadow_alias and w.shadow_alias == w.canary_alias:
        raise ConfigError(
            f"{where}: [worker] shadow_alias and canary_alias are both {w.shadow_alias!r}: a "
            f"version is either shadowed (its predictions to [kafka] shadow_topic only) or a "
            f"canary (on the output topic); use two aliases or set one to ''"
        )


def _check_gate(cfg: Config, where: str) -> None:
    g = cfg.training.gate
    task = cfg.training.task
    other = "regression" if task == "classification" else "classification"
    named = [(f"{kind}.{m}", m) for kind, table in (("min", g.min), ("max", g.max)) for m in table]
    if g.compare_metric:
        named.append((f"compare_metric = {g.compare_metric!r}", g.compare_metric))
    for place, metric in named:
        if metric in TASK_METRICS[other]:
            raise ConfigError(
                f"{where}: [training.gate] {place}: {metric} is a {other} metric but "
                f"[training] task = {task!r}; gate a {task} model on "
                f"{', '.join(TASK_METRICS[task])} (or set task = {other!r})"
            )
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
