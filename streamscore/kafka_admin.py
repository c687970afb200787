"""Topic administration and offsets: the one helper the demo, tests and workers use.

* :func:`ensure_topics` creates the configured topics with the configured partition count
  (never relying on the broker's auto-creation, which makes other counts).
* :func:`high_watermarks` reads end offsets from **fetch** responses. Tansu answers admin
  ``ListOffsets(LATEST)`` wrongly (first offset of the last batch + 1), so the admin end-offset
  call and ``seek_to_end`` are avoided; the fetch high watermark is right on Tansu and on
  Apache Kafka alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import TopicPartition

from streamscore.config import KafkaConfig
from streamscore.exceptions import BrokerError

log = logging.getLogger(__name__)


def client_kwargs(kafka: KafkaConfig) -> dict[str, Any]:
    """Connection settings for kafka-python clients (security included, never logged)."""
    return {
        "bootstrap_servers": [s.strip() for s in kafka.bootstrap_servers.split(",") if s.strip()],
        "client_id": kafka.client_id,
        "request_timeout_ms": kafka.request_timeout_ms,
        **kafka.client_security(),
    }


def _unreachable(kafka: KafkaConfig, exc: Exception) -> BrokerError:
    return BrokerError(
        f"Kafka at {kafka.bootstrap_servers} did not answer ({type(exc).__name__}: {exc}); "
        f"is the broker running? `streamscore broker start`, or set [kafka] bootstrap_servers "
        f"/ STREAMSCORE__KAFKA__BOOTSTRAP_SERVERS"
    )


def _admin(kafka: KafkaConfig) -> Any:
    try:
        return KafkaAdminClient(**client_kwargs(kafka))
    except (KafkaError, OSError, ValueError) as exc:
        raise _unreachable(kafka, exc) from exc


def ensure_topics(
    kafka: KafkaConfig,
    topics: Iterable[str] | None = None,
    *,
    partitions: int | None = None,
    timeout_s: float = 15.0,
) -> dict[str, int]:
    """Create missing topics; return ``topic → partition count`` once metadata shows them.

    Default: input, output and dead-letter topics with ``[kafka] partitions``, and the control
    topic with one partition. Safe when several workers start together.
    """
    if topics is None:
        wanted = {
            kafka.input_topic: partitions or kafka.partitions,
            kafka.output_topic: partitions or kafka.partitions,
            kafka.dead_letter_topic: partitions or kafka.partitions,
            kafka.control_topic: 1,
        }
    else:
        wanted = {t: partitions or kafka.partitions for t in topics}
    admin = _admin(kafka)
    try:
        try:
            existing = set(admin.list_topics())
        except KafkaError as exc:
            raise _unreachable(kafka, exc) from exc
        missing = [
            NewTopic(t, n, kafka.replication_factor) for t, n in wanted.items() if t not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another worker created it first
            except KafkaError as exc:
                if "TopicAlreadyExists" not in repr(exc):
                    raise BrokerError(
                        f"could not create topics {[t.name for t in missing]} on "
                        f"{kafka.bootstrap_servers}: {exc}"
                    ) from exc
            log.info("created topics %s", ", ".join(t.name for t in missing))
    finally:
        admin.close()
    return _wait_for_partitions(kafka, wanted, timeout_s)


def _wait_for_partitions(
    kafka: KafkaConfig, wanted: dict[str, int], timeout_s: float
) -> dict[str, int]:
    consumer = KafkaConsumer(**client_kwargs(kafka))
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            counts: dict[str, int] = {}
            for topic in wanted:
                found = consumer.partitions_for_topic(topic)
                if found:
                    counts[topic] = len(found)
            if len(counts) == len(wanted) or time.monotonic() > deadline:
                break
            consumer._client.cluster.request_update()  # noqa: SLF001 - refresh metadata
            time.sleep(0.1)
    finally:
        consumer.close()
    for topic, n in wanted.items():
        if topic not in counts:
            raise BrokerError(f"topic {topic} did not appear within {timeout_s:.0f}s")
        if counts[topic] != n:
            log.warning(
                "topic %s has %d partitions, config asks for %d; streamscore does not change "
                "existing topics",
                topic,
                counts[topic],
                n,
            )
    return counts


def high_watermarks(kafka: KafkaConfig, topic: str, *, timeout_s: float = 10.0) -> dict[int, int]:
    """``partition → end offset`` from fetch responses (correct on Tansu and on Kafka).

    Assigns every partition at its start and fetches until each partition's high watermark is
    known; a fetch response carries it whether or not it returned records.
    """
    consumer = KafkaConsumer(
        **client_kwargs(kafka),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=1024,
        fetch_max_wait_ms=10,
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return {}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + timeout_s
        result: dict[int, int] = {}
        while len(result) < len(tps):
            consumer.poll(timeout_ms=50, max_records=1)
            for tp in tps:
                value = consumer.highwater(tp)
                if value is not None:
                    result[tp.partition] = int(value)
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"could not read the high watermarks of {topic} within {timeout_s:.0f}s "
                    f"(got {len(result)} of {len(tps)} partitions)"
                )
        return result
    except KafkaError as exc:
        raise _unreachable(kafka, exc) from exc
    finally:
        consumer.close()


def committed_offsets(kafka: KafkaConfig, group_id: str, topic: str) -> dict[int, int]:
    """``partition → committed offset`` of a group (kafka-python 3: ``list_group_offsets``)."""
    admin = _admin(kafka)
    try:
        offsets = admin.list_group_offsets({group_id: None}).get(group_id, {})
    except KafkaError as exc:
        raise _unreachable(kafka, exc) from exc
    finally:
        admin.close()
    return {
        tp.partition: int(meta.offset)
        for tp, meta in offsets.items()
        if tp.topic == topic and meta.offset is not None and meta.offset >= 0
    }


def consumer_lag(kafka: KafkaConfig, group_id: str, topic: str) -> dict[int, int]:
    """``partition → events not yet committed`` by the group."""
    ends = high_watermarks(kafka, topic)
    committed = committed_offsets(kafka, group_id, topic)
    return {p: max(end - committed.get(p, 0), 0) for p, end in ends.items()}
