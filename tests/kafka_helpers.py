"""Helpers for broker tests: publish events, read a topic back, wait for conditions.

Plain functions (not fixtures), imported by tests: ``from tests.kafka_helpers import ...``.
Every client is closed before returning (warnings are errors in this suite).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from streamscore import jsonio
from streamscore.config import KafkaConfig
from streamscore.kafka_admin import client_kwargs

Event = bytes | Mapping[str, Any]


@dataclass(frozen=True)
class ConsumedRecord:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    raw: bytes
    """The value as bytes."""
    raw_headers: tuple[tuple[str, bytes], ...]

    @property
    def value(self) -> Any:
        """The value parsed as JSON, or None when it is not JSON."""
        try:
            return jsonio.loads(self.raw)
        except jsonio.JSONDecodeError:
            return None

    @property
    def headers(self) -> dict[str, str]:
        """Headers decoded as UTF-8 (the last one wins for a repeated name)."""
        return {name: value.decode("utf-8", "replace") for name, value in self.raw_headers}


def produce_json(
    kafka: KafkaConfig,
    topic: str,
    records: Iterable[Event],
    key_field: str | None = None,
    *,
    headers: Mapping[str, str | bytes] | None = None,
    partition: int | None = None,
    **producer_settings: Any,
) -> list[tuple[int, int]]:
    """Publish ``records`` to ``topic`` and wait for every acknowledgement.

    Dicts are JSON-encoded and keyed by ``str(record[key_field])`` when ``key_field`` is given;
    bytes are sent as they are, unkeyed. ``headers`` go on every record. Returns
    ``(partition, offset)`` of each record, in order.
    """
    header_list = [(k, v.encode() if isinstance(v, str) else v) for k, v in (headers or {}).items()]
    settings = {"linger_ms": 5, "acks": "all", **producer_settings}
    producer = KafkaProducer(**client_kwargs(kafka), **settings)
    try:
        futures = []
        for record in records:
            key = None
            if isinstance(record, Mapping):
                if key_field is not None and record.get(key_field) is not None:
                    key = str(record[key_field]).encode()
                payload = jsonio.dumps(dict(record))
            else:
                payload = record
            futures.append(
                producer.send(
                    topic, payload, key=key, headers=header_list or None, partition=partition
                )
            )
        producer.flush()
        return [(meta.partition, meta.offset) for meta in (f.get(timeout=30) for f in futures)]
    finally:
        producer.close()


def consume_all(
    kafka: KafkaConfig,
    topic: str,
    expected_count: int,
    timeout_s: float = 30.0,
    *,
    settle_s: float = 0.0,
    strict: bool = True,
    isolation_level: str = "read_uncommitted",
) -> list[ConsumedRecord]:
    """Read ``topic`` from the beginning (no consumer group) until ``expected_count`` records.

    ``settle_s`` keeps reading that long afterwards, so duplicates or extras show up.
    ``isolation_level="read_committed"`` reads as a downstream exactly-once consumer. With
    ``strict`` (default) fewer than ``expected_count`` records within ``timeout_s`` fail the
    test; otherwise whatever arrived is returned. Records come sorted by partition and offset.
    """
    out: list[ConsumedRecord] = []
    consumer = KafkaConsumer(
        **client_kwargs(kafka),
        group_id=None,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        isolation_level=isolation_level,
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.05)
            partitions = consumer.partitions_for_topic(topic)
        if partitions:
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            settle_until: float | None = None
            while time.monotonic() < (settle_until or deadline):
                for records in consumer.poll(timeout_ms=50).values():
                    out.extend(_to_record(r) for r in records)
                if settle_until is None and len(out) >= expected_count:
                    if settle_s <= 0:
                        break
                    settle_until = time.monotonic() + settle_s
    finally:
        consumer.close()
    if strict and len(out) < expected_count:
        raise AssertionError(
            f"read {len(out)} of {expected_count} records from {topic} within {timeout_s:g} s"
        )
    return sorted(out, key=lambda r: (r.partition, r.offset))


def _to_record(record: Any) -> ConsumedRecord:
    return ConsumedRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=record.timestamp,
        key=record.key,
        raw=record.value or b"",
        raw_headers=tuple(
            (name, value if isinstance(value, bytes) else str(value).encode())
            for name, value in (record.headers or ())
        ),
    )


def produce(
    kafka: KafkaConfig,
    values: Iterable[Event],
    *,
    topic: str | None = None,
    key_field: str | None = "id",
) -> int:
    """Publish events to ``topic`` (default: the input topic), keyed by ``id``; returns acks."""
    return len(produce_json(kafka, topic or kafka.input_topic, values, key_field))


def read(
    kafka: KafkaConfig, topic: str, expected: int, timeout_s: float = 60
) -> list[ConsumedRecord]:
    """Up to ``expected`` records (more if they arrived), or what came within ``timeout_s``."""
    return consume_all(kafka, topic, expected, timeout_s, strict=False)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` every 50 ms; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)
