"""A broker outage makes the worker wait and retry, not exit (on a broker of its own)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from broker import EmbeddedBroker, free_port
from streamscore.config import BrokerConfig
from streamscore.kafka_admin import ensure_topics
from tests.kafka_helpers import produce, read, wait_until
from worker.service import ScoringWorker

pytestmark = [pytest.mark.broker, pytest.mark.slow]


# The memory-only Tansu broker comes back empty: no logs, no commits, no producer ids. The
# worker must resume from the broker's (now absent) commits rather than its old positions, and
# must not keep a producer whose id the new broker may give to someone else. Kafka comes back
# with its log and commits: the worker must resume where its group committed.
@pytest.mark.parametrize("transport", ["kafka-python", "confluent-kafka"])
def test_worker_survives_a_broker_outage_and_resumes(
    config_factory, register, demo_set, caplog, transport, restartable_broker
):
    broker = restartable_broker
    cfg = config_factory(
        kafka={"bootstrap_servers": broker.address, "transport": transport},
        worker={"retry_backoff_ms": 100, "max_retry_backoff_ms": 500, "delivery_timeout_ms": 2000},
        create_topics=False,
    )
    ensure_topics(cfg.kafka)
    register()
    worker = ScoringWorker(cfg)
    thread = threading.Thread(target=worker.run, daemon=True)
    caplog.set_level(logging.WARNING)
    thread.start()
    try:
        produce(cfg.kafka, [demo_set.event(i) for i in range(20)])
        read(cfg.kafka, cfg.kafka.output_topic, expected=20)
        broker.stop()
        time.sleep(4)
        assert thread.is_alive(), "the worker exited during the outage"
        broker.start()  # Tansu comes back empty, Kafka with its log
        ensure_topics(cfg.kafka)
        produce(cfg.kafka, [demo_set.event(i, id=f"after-{i}") for i in range(20)])
        # Tansu lost the first 20 outputs; Kafka keeps them, so the new ones come after them.
        expected = 20 if broker.restarts_empty else 40
        outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=expected, timeout_s=90)
        assert {r.value["id"] for r in outputs} >= {f"after-{i}" for i in range(20)}
        assert thread.is_alive()
    finally:
        worker.stop()
        thread.join(timeout=60)
    wait_until(lambda: not thread.is_alive(), 5, "the worker to stop")


def test_worker_recreates_its_topics_with_their_partition_counts_after_an_empty_restart(
    config_factory, register, demo_set, tmp_path
):
    from kafka import KafkaAdminClient

    from streamscore.kafka_admin import client_kwargs

    port = free_port()
    broker = EmbeddedBroker(BrokerConfig(port=port, run_dir=tmp_path / "own-broker"))
    broker.start()
    cfg = config_factory(
        kafka={"bootstrap_servers": f"127.0.0.1:{port}"},
        worker={"retry_backoff_ms": 100, "max_retry_backoff_ms": 500, "topic_check_ms": 1000},
        create_topics=False,
    )
    register()
    worker = ScoringWorker(cfg)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    k = cfg.kafka
    wanted = {k.input_topic: 4, k.output_topic: 4, k.dead_letter_topic: 4, k.control_topic: 1}

    def counts() -> dict[str, int]:
        admin = KafkaAdminClient(**client_kwargs(k))
        try:
            found = admin.describe_topics(list(wanted))
        finally:
            admin.close()
        return {t["name"]: len(t["partitions"]) for t in found if t.get("partitions")}

    try:
        wait_until(lambda: counts() == wanted, 30, "the topics at start")
        wait_until(lambda: worker.ready, 60, "the worker ready")  # past its start-up checks
        broker.stop()
        broker.start()  # memory-only: comes back with no topics at all
        assert counts() != wanted
        # Nobody but the worker creates them: not the test, not auto-creation.
        wait_until(lambda: counts() == wanted, 60, "the worker to recreate its topics")
        produce(k, [demo_set.event(i, id=f"back-{i}") for i in range(10)])
        outputs = read(k, k.output_topic, expected=10, timeout_s=60)
        assert {r.value["id"] for r in outputs} >= {f"back-{i}" for i in range(10)}
    finally:
        worker.stop()
        thread.join(timeout=60)
        broker.stop()


def test_the_topic_keeper_outlives_a_check_that_raises_anything(monkeypatch):
    import worker.topics as topics
    from streamscore.config import KafkaConfig

    calls: list[int] = []

    def flaky(kafka, timeout_s=None, **_):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a client error no rule foresaw")
        return {}

    monkeypatch.setattr(topics, "ensure_topics", flaky)
    monkeypatch.setattr(topics, "ensure_worker_extras", lambda *a, **k: None)
    keeper = topics.TopicKeeper(KafkaConfig(), 20)
    keeper.start()
    try:
        wait_until(lambda: len(calls) >= 3, 5, "checks after the one that raised")
    finally:
        keeper.stop()
    assert keeper._failing is False
