"""Read predictions or dead letters back from their topic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from streamscore import jsonio
from streamscore.config import KafkaConfig
from streamscore.exceptions import BrokerError
from streamscore.kafka_admin import client_kwargs, high_watermarks
from streamscore.wire import headers_dict

#: Outputs of an exactly-once worker are transactional: read only committed ones (records of
#: an at-least-once worker are all committed, so nothing changes for them).
READ_COMMITTED = "read_committed"


@dataclass(frozen=True)
class Result:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    raw: bytes
    headers: dict[str, str]

    @property
    def value(self) -> Any:
        """The value as JSON, or None when it is not JSON (a dead letter may not be)."""
        try:
            return jsonio.loads(self.raw)
        except jsonio.JSONDecodeError:
            return None


def to_result(record: Any) -> Result:
    """A kafka-python consumer record as a :class:`Result`."""
    headers = headers_dict(record.headers)
    return Result(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value or b"",
        headers,
    )


def read_topic(
    kafka: KafkaConfig,
    topic: str,
    *,
    limit: int | None = None,
    from_beginning: bool = False,
    follow: bool = False,
    idle_timeout_s: float = 2.0,
) -> Iterator[Result]:
    """Yield records of ``topic``.

    Without ``from_beginning``: the last ``limit`` records per partition that exist now
    (like ``tail``). With it: from offset 0. ``follow`` keeps waiting for new records;
    otherwise reading ends at the high watermarks measured at the start, and a broker that
    sends nothing for ``idle_timeout_s`` before they are reached is an error (never a short
    answer that looks complete).
    """
    ends = high_watermarks(kafka, topic)
    consumer = KafkaConsumer(
        **client_kwargs(kafka), enable_auto_commit=False, isolation_level=READ_COMMITTED
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(ends)]
        consumer.assign(tps)
        remaining: dict[int, int] = {}
        for tp in tps:
            end = ends[tp.partition]
            start = 0 if from_beginning or limit is None else max(end - limit, 0)
            consumer.seek(tp, start)
            if end > start:
                remaining[tp.partition] = end
        yielded = 0
        last_data = time.monotonic()
        while follow or remaining:
            polled = consumer.poll(timeout_ms=200)
            if polled:
                last_data = time.monotonic()
            for records in polled.values():
                for record in records:
                    yield to_result(record)
                    yielded += 1
                    stop_at = remaining.get(record.partition)
                    if stop_at is not None and record.offset + 1 >= stop_at:
                        del remaining[record.partition]
                    if follow and limit is not None and from_beginning and yielded >= limit:
                        return
            if not follow and time.monotonic() - last_data > idle_timeout_s:
                short = ", ".join(
                    f"{topic}[{p}] up to offset {end}" for p, end in remaining.items()
                )
                raise BrokerError(
                    f"Kafka at {kafka.bootstrap_servers} sent nothing for {idle_timeout_s:g} s "
                    f"while {short} remained to read ({yielded} records read); is the broker "
                    f"overloaded or restarting? Try again, or read with --follow"
                )
    finally:
        consumer.close()


def collect(
    kafka: KafkaConfig, topic: str, *, expected: int, timeout_s: float = 60.0
) -> list[Result]:
    """Read ``topic`` from the beginning until ``expected`` records arrived or time ran out."""
    consumer = KafkaConsumer(
        **client_kwargs(kafka), enable_auto_commit=False, isolation_level=READ_COMMITTED
    )
    out: list[Result] = []
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                time.sleep(0.1)
        if not partitions:
            return out
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while len(out) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(to_result(r) for r in records)
        return out
    finally:
        consumer.close()
