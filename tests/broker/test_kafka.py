"""Apache Kafka on demand (broker/kafka.py): jars from Maven, one KRaft node, start and stop.

The tests marked ``kafka`` start JVMs of their own (10-20 s each) and need Java 17+ and Maven:
``make pytest-kafka`` runs them; elsewhere they are skipped, or fail under ``CI=true``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker import free_port, kafka_answers
from broker.kafka import (
    KAFKA_VERSION,
    KafkaBroker,
    is_kafka_broker,
    missing_tools,
    new_cluster_id,
    resolve_kafka_libs,
    server_properties,
)
from streamscore.config import config_from_dict
from streamscore.exceptions import BrokerError
from streamscore.kafka_admin import ensure_topics
from tests.conftest import ON_CI
from tests.kafka_helpers import consume_all, produce_json
from tests.tomlwrite import dumps_toml


def _needs_kafka() -> None:
    reason = missing_tools()
    if reason is None:
        return
    if ON_CI:
        pytest.fail(f"CI=true: Apache Kafka tests must run, but {reason}", pytrace=False)
    pytest.skip(f"needs Java 17+ and Maven: {reason}")


# --------------------------------------------------------------------------- without a JVM


def test_server_properties_describe_one_node_whose_internal_topics_need_one_replica(tmp_path):
    props = server_properties(host="127.0.0.1", port=1234, controller_port=5678, data_dir=tmp_path)

    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:5678"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:1234"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "min.insync.replicas",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.dirs"] == str(tmp_path)


def test_new_cluster_id_is_22_url_safe_base64_characters():
    ids = {new_cluster_id() for _ in range(50)}

    assert len(ids) == 50
    assert all(
        len(i) == 22
        and set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for i in ids
    )


def test_missing_java_is_named_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    assert "no `java` on PATH" in (missing_tools() or "")
    with pytest.raises(BrokerError, match=r"apt-get install openjdk-17-jre-headless maven"):
        resolve_kafka_libs(tmp_path / "cache")


def test_a_port_held_by_another_process_is_refused_before_any_jvm_starts(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BrokerError, match=rf"port {port} on 127.0.0.1 is in use"):
            KafkaBroker(run_dir=tmp_path, port=port).start(detach=False)


def test_this_process_is_not_mistaken_for_a_kafka_broker(tmp_path):
    assert not is_kafka_broker(os.getpid(), tmp_path / "server.properties")
    assert KafkaBroker(run_dir=tmp_path / "never").stop() is False


# --------------------------------------------------------------------------- a real JVM


@pytest.mark.kafka
def test_cli_start_engine_kafka_serves_topics_that_survive_a_restart_then_stops(tmp_path):
    _needs_kafka()
    from app.broker_cli import broker as broker_cli

    port = free_port()
    path = tmp_path / "config.toml"
    kafka_table = {
        "bootstrap_servers": f"127.0.0.1:{port}",
        "input_topic": "in",
        "output_topic": "out",
        "dead_letter_topic": "dlq",
        "control_topic": "ctl",
        "partitions": 3,
        "request_timeout_ms": 10_000,
    }
    path.write_text(dumps_toml({"kafka": kafka_table, "broker": {"port": port, "run_dir": "run"}}))
    kafka = config_from_dict({"kafka": kafka_table}, environ={}).kafka
    config = ["--config", str(path)]

    def cli(*args: str):
        return CliRunner().invoke(broker_cli, [*args, *config], catch_exceptions=False)

    node = KafkaBroker(run_dir=tmp_path / "run", port=port)
    try:
        started = cli("start", "--engine", "kafka")
        assert started.exit_code == 0, started.output
        assert f"started (Apache Kafka {KAFKA_VERSION}, pid" in started.output
        assert "in (3 partitions), out (3 partitions), dlq (3 partitions), ctl (1 partition)" in (
            started.output
        )
        first = node.status()
        assert first is not None and os.getsid(first.pid) == first.pid  # outlives the CLI
        assert "Kafka Server started" in (tmp_path / "run" / "kafka.log").read_text()

        again = cli("start", "--engine", "kafka")
        tansu = cli("start")
        running = cli("status")
        assert again.exit_code == 0 and "already running (Apache Kafka" in again.output
        assert tansu.exit_code != 0 and "the other engine already runs" in tansu.output
        assert running.exit_code == 0 and "answering" in running.output
        produce_json(kafka, "in", [{"id": i} for i in range(10)], key_field="id")

        stopped = cli("stop")
        assert stopped.exit_code == 0 and "stopped (Apache Kafka" in stopped.output
        assert not kafka_answers("127.0.0.1", port, timeout_s=0.3)
        assert not Path(f"/proc/{first.pid}").exists()

        restarted = cli("start", "--engine", "kafka")
        assert restarted.exit_code == 0, restarted.output
        assert ensure_topics(kafka)["in"] == 3
        assert sorted(r.value["id"] for r in consume_all(kafka, "in", 10)) == list(range(10))
    finally:
        node.stop()
    assert cli("status").exit_code == 1


def test_a_new_cluster_id_never_starts_with_a_dash_which_kafka_storage_reads_as_an_option():
    # 1 in 64 ids would start with "-": in 5,000 draws one would, with certainty but 1e-34.
    assert not [i for i in (new_cluster_id() for _ in range(5000)) if i.startswith("-")]
