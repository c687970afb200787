"""Both Kafka transports publish with the same guarantee: ``publish`` returns only when the
broker acknowledged every record, waits out an outage, and at shutdown says what it could not
deliver (so the caller does not commit those offsets). Embedded broker only: the tests stop and
restart a broker of their own."""

from __future__ import annotations

import os
import threading
import time

import pytest

from broker import EmbeddedBroker, free_port
from streamscore.config import BrokerConfig
from streamscore.kafka_admin import ensure_topics
from streamscore.wire import OutRecord
from tests.kafka_helpers import read
from worker.transport import DeliveryFailed, make_transport

pytestmark = [
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
        reason="stops and restarts its own embedded broker",
    ),
]


@pytest.fixture(params=["kafka-python", "confluent-kafka"])
def own_broker(request, config_factory, tmp_path):
    """(config, broker): a broker only this test uses, and a config for ``param``'s client."""
    port = free_port()
    broker = EmbeddedBroker(BrokerConfig(port=port, run_dir=tmp_path / "own-broker"))
    broker.start()
    cfg = config_factory(
        kafka={"bootstrap_servers": f"127.0.0.1:{port}", "transport": request.param},
        worker={"retry_backoff_ms": 100, "max_retry_backoff_ms": 500, "delivery_timeout_ms": 1500},
        create_topics=False,
    )
    ensure_topics(cfg.kafka)
    yield cfg, broker
    broker.stop()


def records(topic: str, n: int, prefix: str) -> list[OutRecord]:
    return [
        OutRecord(topic, f"{prefix}-{i}".encode(), f'{{"n": {i}}}'.encode(), [], i % 4)
        for i in range(n)
    ]


def test_publish_waits_out_an_outage_and_delivers_every_record(own_broker):
    cfg, broker = own_broker
    topic = cfg.kafka.output_topic
    transport = make_transport(cfg, client_id="publish-test")
    try:
        transport.publish(records(topic, 10, "before"), threading.Event())
        broker.stop()
        done = threading.Event()
        failure: list[BaseException] = []

        def publish() -> None:
            try:
                transport.publish(records(topic, 50, "during"), threading.Event())
            except BaseException as exc:
                failure.append(exc)
            done.set()

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        time.sleep(3)  # longer than the delivery timeout: the first round fails
        assert not done.is_set(), "publish returned while the broker was down"
        broker.start()  # memory-only: it comes back empty
        ensure_topics(cfg.kafka)
        assert done.wait(60), "publish did not finish after the broker came back"
        assert failure == []
        keys = {r.key for r in read(cfg.kafka, topic, expected=50, timeout_s=30)}
        assert keys >= {f"during-{i}".encode() for i in range(50)}
    finally:
        transport.close()


def test_publish_at_shutdown_raises_for_unacknowledged_records(own_broker):
    cfg, broker = own_broker
    transport = make_transport(cfg, client_id="shutdown-test")
    try:
        transport.publish(records(cfg.kafka.output_topic, 5, "ok"), threading.Event())
        broker.stop()
        stop = threading.Event()
        stop.set()
        started = time.monotonic()
        with pytest.raises(DeliveryFailed, match=r"20 of 20 records unacknowledged at shutdown"):
            transport.publish(records(cfg.kafka.output_topic, 20, "lost"), stop)
        assert time.monotonic() - started < 30
    finally:
        broker.start()
        transport.close()
