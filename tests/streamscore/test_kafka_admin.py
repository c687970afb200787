"""Topics and offsets on a real broker: ensure_topics, high watermarks, committed offsets, lag."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from broker import free_port
from streamscore.config import KafkaConfig, Secret
from streamscore.exceptions import BrokerError, ConfigError
from streamscore.kafka_admin import (
    client_kwargs,
    committed_offsets,
    consumer_lag,
    ensure_topics,
    high_watermarks,
)
from tests.kafka_helpers import produce_json

pytestmark = pytest.mark.broker


def partition_counts(kafka: KafkaConfig, topics: list[str]) -> dict[str, int]:
    """What the cluster metadata says, read independently of ensure_topics."""
    admin = KafkaAdminClient(**client_kwargs(kafka))
    try:
        return {
            t["name"]: len(t["partitions"])
            for t in admin.describe_topics(topics)
            if t["error_code"] == 0
        }
    finally:
        admin.close()


def topic_names(kafka: KafkaConfig) -> list[str]:
    return [kafka.input_topic, kafka.output_topic, kafka.dead_letter_topic, kafka.control_topic]


def produce_in_batches(kafka: KafkaConfig, topic: str, batches: list[int], **settings) -> Counter:
    """Send ``batches[i]`` records round-robin over 4 partitions, flushing after each batch,
    so each partition holds several record batches. Returns records per partition."""
    sent: Counter = Counter()
    n = 0
    producer = KafkaProducer(**client_kwargs(kafka), linger_ms=20, **settings)
    try:
        for size in batches:
            for _ in range(size):
                producer.send(topic, b'{"n": %d}' % n, partition=n % 4)
                sent[n % 4] += 1
                n += 1
            producer.flush()
    finally:
        producer.close()
    return sent


def unreachable_config(**changes) -> KafkaConfig:
    """Nothing listens there. Built directly (config files cannot set a request timeout this
    short) so that each failure takes half a second."""
    settings = {"bootstrap_servers": f"127.0.0.1:{free_port()}", "request_timeout_ms": 500}
    names = {  # the loader derives these from the model name; built directly, they are given
        "input_topic": "unreachable.events",
        "output_topic": "unreachable.predictions",
        "dead_letter_topic": "unreachable.dead-letters",
        "control_topic": "unreachable.control",
        "group_id": "unreachable",
    }
    return KafkaConfig(**(settings | names | changes))


# --------------------------------------------------------------------------- ensure_topics


def test_ensure_topics_creates_the_configured_topics_control_with_one_partition(
    kafka_config_factory,
):
    kafka = kafka_config_factory(create=False, partitions=3)

    counts = ensure_topics(kafka)

    expected = {kafka.input_topic: 3, kafka.output_topic: 3, kafka.dead_letter_topic: 3}
    expected[kafka.control_topic] = 1
    assert counts == expected
    assert partition_counts(kafka, topic_names(kafka)) == expected


def test_ensure_topics_is_idempotent_and_creates_nothing_the_second_time(
    kafka_config_factory, caplog
):
    kafka = kafka_config_factory(create=False)
    first = ensure_topics(kafka)

    with caplog.at_level(logging.INFO, logger="streamscore.kafka_admin"):
        second = ensure_topics(kafka)

    assert second == first
    assert "created topics" not in caplog.text


def test_ensure_topics_with_names_and_partitions(kafka_config):
    name = kafka_config.input_topic + "-extra"

    assert ensure_topics(kafka_config, [name], partitions=2) == {name: 2}
    assert partition_counts(kafka_config, [name]) == {name: 2}


def test_an_existing_topic_with_another_partition_count_is_a_warning_not_an_error(
    kafka_config, caplog
):
    with caplog.at_level(logging.WARNING, logger="streamscore.kafka_admin"):
        counts = ensure_topics(kafka_config, [kafka_config.input_topic], partitions=6)

    assert counts == {kafka_config.input_topic: 4}
    assert f"topic {kafka_config.input_topic} has 4 partitions" in caplog.text
    assert "asks for 6" in caplog.text


def test_ensure_topics_from_many_workers_at_once_all_succeed(kafka_config_factory):
    kafka = kafka_config_factory(create=False)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(ensure_topics(kafka))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert len(results) == 6
    assert all(r == results[0] for r in results)
    assert sorted(results[0].values()) == [1, 4, 4, 4]


@pytest.mark.parametrize("name", ["has space", "slash/name", "", "..", "x" * 250])
def test_invalid_topic_names_are_refused_before_reaching_kafka(kafka_config, name):
    with pytest.raises(ConfigError, match="is not valid in Kafka"):
        ensure_topics(kafka_config, [name])


# --------------------------------------------------------------------------- high watermarks


def test_high_watermarks_count_every_record_across_many_batches(kafka_config):
    """Tansu's ListOffsets(LATEST) answers the last batch's base offset + 1 here."""
    topic = kafka_config.input_topic
    sent = produce_in_batches(kafka_config, topic, [37, 74, 111, 148, 185])

    assert high_watermarks(kafka_config, topic) == {p: sent[p] for p in range(4)}


def test_high_watermarks_with_compressed_batches(kafka_config):
    topic = kafka_config.output_topic
    sent = produce_in_batches(kafka_config, topic, [50, 120, 30], compression_type="gzip")

    assert high_watermarks(kafka_config, topic) == {p: sent[p] for p in range(4)}


def test_high_watermarks_differ_from_list_offsets_on_tansu_but_match_the_records(
    kafka_config, broker_engine
):
    """Why high_watermarks reads fetch responses: compare with the consumer's end_offsets
    (ListOffsets LATEST), short on Tansu (the first offset of the last batch + 1), exact on
    Apache Kafka."""
    topic = kafka_config.input_topic
    sent = produce_in_batches(kafka_config, topic, [40, 40, 40])
    tps = [TopicPartition(topic, p) for p in range(4)]
    consumer = KafkaConsumer(**client_kwargs(kafka_config), enable_auto_commit=False)
    try:
        list_offsets = {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()

    ends = high_watermarks(kafka_config, topic)

    assert ends == {p: sent[p] for p in range(4)}
    assert all(list_offsets[p] <= ends[p] for p in ends)
    if broker_engine == "tansu":
        assert list_offsets != ends, "Tansu fixed ListOffsets: high_watermarks could use it"
    elif broker_engine == "kafka":
        assert list_offsets == ends


def test_high_watermarks_of_empty_partitions_are_zero(kafka_config):
    produce_json(kafka_config, kafka_config.input_topic, [b"only"], partition=2)

    assert high_watermarks(kafka_config, kafka_config.input_topic) == {0: 0, 1: 0, 2: 1, 3: 0}


def test_high_watermarks_of_a_missing_topic_is_empty_and_does_not_create_it(kafka_config):
    missing = kafka_config.input_topic + "-missing"

    assert high_watermarks(kafka_config, missing) == {}
    assert partition_counts(kafka_config, [missing]) == {}


def test_high_watermarks_is_quick_on_a_long_topic(kafka_config):
    topic = kafka_config.input_topic
    sent = produce_in_batches(kafka_config, topic, [5000, 5000])

    started = time.monotonic()
    ends = high_watermarks(kafka_config, topic)

    assert ends == {p: sent[p] for p in range(4)}
    assert time.monotonic() - started < 2, "reads only the tail of each partition"


# --------------------------------------------------------------------------- groups


def commit(kafka: KafkaConfig, group_id: str, offsets: dict[int, int]) -> None:
    """Commit offsets for a group without joining it (manual assignment, no rebalance wait)."""
    consumer = KafkaConsumer(
        **client_kwargs(kafka),
        group_id=group_id,
        enable_auto_commit=False,
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
    )
    try:
        tps = {p: TopicPartition(kafka.input_topic, p) for p in offsets}
        consumer.assign(list(tps.values()))
        consumer.commit({tps[p]: OffsetAndMetadata(o, None, -1) for p, o in offsets.items()})
    finally:
        consumer.close()


def test_committed_offsets_and_lag_of_a_group(kafka_config):
    topic, group = kafka_config.input_topic, kafka_config.group_id
    produce_in_batches(kafka_config, topic, [40, 40])  # 20 per partition
    commit(kafka_config, group, {0: 20, 1: 5, 2: 0})

    assert committed_offsets(kafka_config, group, topic) == {0: 20, 1: 5, 2: 0}
    # partition 3 was never committed: its lag counts from the earliest offset
    assert consumer_lag(kafka_config, group, topic) == {0: 0, 1: 15, 2: 20, 3: 20}


def test_an_unknown_group_has_no_offsets_and_lags_by_everything(kafka_config):
    produce_in_batches(kafka_config, kafka_config.input_topic, [12])  # 3 per partition
    group = kafka_config.group_id + "-nobody"

    assert committed_offsets(kafka_config, group, kafka_config.input_topic) == {}
    assert consumer_lag(kafka_config, group, kafka_config.input_topic) == {0: 3, 1: 3, 2: 3, 3: 3}


def test_committed_offsets_only_reports_the_asked_topic(kafka_config):
    commit(kafka_config, kafka_config.group_id, {1: 0})

    assert committed_offsets(kafka_config, kafka_config.group_id, "another-topic") == {}


# --------------------------------------------------------------------------- connection


def test_client_kwargs_carry_connection_and_security_settings():
    kafka = KafkaConfig(
        bootstrap_servers="k1:9092, k2:9093",
        client_id="scorer",
        request_timeout_ms=20_000,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password=Secret("hunter2"),
        ssl_cafile="/etc/ca.pem",
    )

    assert client_kwargs(kafka) == {
        "bootstrap_servers": ["k1:9092", "k2:9093"],
        "client_id": "scorer",
        "request_timeout_ms": 20_000,
        "bootstrap_timeout_ms": 20_000,
        "api_version": None,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "hunter2",
        "ssl_cafile": "/etc/ca.pem",
    }


def test_client_kwargs_are_accepted_by_every_kafka_python_client(kafka_config):
    for client in (
        KafkaAdminClient(**client_kwargs(kafka_config)),
        KafkaConsumer(**client_kwargs(kafka_config)),
        KafkaProducer(**client_kwargs(kafka_config)),
    ):
        client.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda k: ensure_topics(k),
        lambda k: high_watermarks(k, "t"),
        lambda k: committed_offsets(k, "g", "t"),
        lambda k: consumer_lag(k, "g", "t"),
    ],
    ids=["ensure_topics", "high_watermarks", "committed_offsets", "consumer_lag"],
)
def test_an_unreachable_cluster_is_a_broker_error_with_the_address_and_the_fix(call, caplog):
    kafka = unreachable_config(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password=Secret("hunter2"),
    )

    started = time.monotonic()
    with caplog.at_level(logging.INFO), pytest.raises(BrokerError) as err:
        call(kafka)

    assert time.monotonic() - started < 10
    message = str(err.value)
    assert kafka.bootstrap_servers in message
    assert "streamscore broker start" in message
    assert "STREAMSCORE__KAFKA__BOOTSTRAP_SERVERS" in message
    assert err.value.__cause__ is not None
    assert "hunter2" not in message and "hunter2" not in caplog.text
