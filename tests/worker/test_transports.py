"""Both Kafka transports publish with the same guarantee: ``publish`` returns only when the
broker acknowledged every record, waits out an outage, and at shutdown says what it could not
deliver (so the caller does not commit those offsets). Not on an external cluster: the tests
stop and restart a broker of their own (of the session's engine: Tansu comes back empty, Kafka
with its log)."""

from __future__ import annotations

import threading
import time

import pytest

from streamscore.kafka_admin import ensure_topics
from streamscore.wire import OutRecord
from tests.kafka_helpers import read
from worker.transport import DeliveryFailed, make_transport

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture(params=["kafka-python", "confluent-kafka"])
def own_broker(request, config_factory, restartable_broker):
    """(config, broker): a broker only this test uses, and a config for ``param``'s client."""
    broker = restartable_broker
    cfg = config_factory(
        kafka={"bootstrap_servers": broker.address, "transport": request.param},
        worker={"retry_backoff_ms": 100, "max_retry_backoff_ms": 500, "delivery_timeout_ms": 1500},
        create_topics=False,
    )
    ensure_topics(cfg.kafka)
    return cfg, broker


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
        broker.start()  # Tansu comes back empty, Kafka with its log
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
