"""The worker's Kafka side on confluent-kafka (librdkafka): the same contract as
:class:`worker.kafka_io.KafkaPythonTransport`, several times the client throughput.

Chosen with ``[kafka] transport = "confluent-kafka"``. Delivery is checked per record through
delivery reports; offsets are committed synchronously after every report of the batch arrived.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from streamscore.config import Config, KafkaConfig
from worker.kafka_io import DeliveryFailed, Partition
from worker.records import OutRecord

log = logging.getLogger(__name__)


def confluent_settings(kafka: KafkaConfig) -> dict[str, Any]:
    """Connection and security settings in librdkafka's spelling."""
    out: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": kafka.client_id,
        "security.protocol": kafka.security_protocol.lower(),
        "socket.timeout.ms": kafka.request_timeout_ms,
    }
    if kafka.sasl_mechanism:
        out["sasl.mechanisms"] = kafka.sasl_mechanism
    if kafka.sasl_username:
        out["sasl.username"] = kafka.sasl_username
    if kafka.sasl_password:
        out["sasl.password"] = kafka.sasl_password.reveal()
    for ours, theirs in (
        ("ssl_cafile", "ssl.ca.location"),
        ("ssl_certfile", "ssl.certificate.location"),
        ("ssl_keyfile", "ssl.key.location"),
    ):
        if getattr(kafka, ours):
            out[theirs] = getattr(kafka, ours)
    return out


class Record:
    """A consumed message in the shape the processor reads (like kafka-python's record)."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, message: Any) -> None:
        self.topic: str = message.topic()
        self.partition: int = message.partition()
        self.offset: int = message.offset()
        self.timestamp: int = message.timestamp()[1]
        self.key: bytes | None = message.key()
        self.value: bytes | None = message.value()
        self.headers = message.headers()


class ConfluentTransport:
    def __init__(self, cfg: Config, *, client_id: str) -> None:
        try:
            from confluent_kafka import Consumer, Producer
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            from streamscore.exceptions import ConfigError

            raise ConfigError(
                '[kafka] transport = "confluent-kafka" needs the confluent-kafka package, '
                "which requirements.lock pins: pip install -r requirements.lock"
            ) from exc
        k, w = cfg.kafka, cfg.worker
        common = confluent_settings(k)
        common["client.id"] = client_id
        self.consumer = Consumer(
            {
                **common,
                "group.id": k.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": k.session_timeout_ms,
                "heartbeat.interval.ms": k.heartbeat_interval_ms,
                "max.poll.interval.ms": k.max_poll_interval_ms,
                "fetch.max.bytes": w.fetch_max_bytes,
                "max.partition.fetch.bytes": w.max_partition_fetch_bytes,
                "fetch.wait.max.ms": min(max(w.max_wait_ms, 10), 500),
                "enable.partition.eof": False,
            }
        )
        self.producer = Producer(
            {
                **common,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": w.linger_ms,
                "batch.size": w.producer_batch_bytes,
                "compression.type": w.compression,
                "delivery.timeout.ms": w.delivery_timeout_ms,
            }
        )
        self.backoff_s = w.retry_backoff_ms / 1000
        self.max_backoff_s = w.max_retry_backoff_ms / 1000
        self.delivery_timeout_s = w.delivery_timeout_ms / 1000
        self._tp: Any = None

    # ------------------------------------------------------------------ consuming

    def subscribe(
        self,
        topic: str,
        on_assign: Callable[[list[Partition]], None],
        on_revoke: Callable[[list[Partition]], None],
    ) -> None:
        def assigned(_consumer: Any, partitions: list[Any]) -> None:
            on_assign(sorted((p.topic, p.partition) for p in partitions))

        def revoked(_consumer: Any, partitions: list[Any]) -> None:
            on_revoke(sorted((p.topic, p.partition) for p in partitions))

        self.consumer.subscribe([topic], on_assign=assigned, on_revoke=revoked)

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]:
        messages = self.consumer.consume(num_messages=max_records, timeout=timeout_ms / 1000)
        out = []
        for message in messages:
            error = message.error()
            if error is not None:
                log.warning("consume error: %s", error)
                continue
            out.append(Record(message))
        return out

    def assignment(self) -> list[Partition]:
        return sorted((p.topic, p.partition) for p in self.consumer.assignment())

    def highwater(self, topic: str, partition: int) -> int | None:
        from confluent_kafka import TopicPartition

        _low, high = self.consumer.get_watermark_offsets(
            TopicPartition(topic, partition), cached=True
        )
        return int(high) if high is not None and high >= 0 else None

    def seek(self, topic: str, partition: int, offset: int) -> None:
        from confluent_kafka import TopicPartition

        try:
            self.consumer.seek(TopicPartition(topic, partition, offset))
        except Exception:  # not fetching yet: the committed offset is used anyway
            log.debug("seek %s[%d] to %d failed", topic, partition, offset, exc_info=True)

    def position(self, topic: str, partition: int) -> int | None:
        from confluent_kafka import TopicPartition

        [tp] = self.consumer.position([TopicPartition(topic, partition)])
        return int(tp.offset) if tp.offset >= 0 else None

    # ------------------------------------------------------------------ producing

    def publish(self, records: Sequence[OutRecord], stop: threading.Event) -> None:
        """Produce every record; return when each delivery report says it was written."""
        pending = list(records)
        backoff = self.backoff_s
        while pending:
            reports = _Reports()
            produce = self.producer.produce
            for record in pending:
                callback = reports.callback(record)
                while True:
                    try:
                        produce(
                            record.topic,
                            value=record.value,
                            key=record.key,
                            headers=record.headers,
                            on_delivery=callback,
                        )
                        break
                    except BufferError:  # local queue full: serve delivery reports, retry
                        self.producer.poll(0.05)
            remaining = self.producer.flush(self.delivery_timeout_s)
            errors = reports.errors
            if remaining:
                errors.append(f"{remaining} records without a delivery report in time")
            # Anything without a positive report is sent again (at-least-once).
            failed = [r for r in pending if id(r) not in reports.delivered]
            if not failed:
                return
            if stop.is_set():
                raise DeliveryFailed(
                    f"{len(failed)} of {len(records)} records unacknowledged at shutdown: "
                    f"{errors[0]}"
                )
            log.warning(
                "%d of %d records not acknowledged (%s); retrying in %.1fs",
                len(failed),
                len(records),
                errors[0],
                backoff,
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
            pending = failed

    # ------------------------------------------------------------------ committing

    def commit(self, offsets: dict[Partition, int], stop: threading.Event) -> bool:
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        payload = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        backoff = self.backoff_s
        while True:
            try:
                self.consumer.commit(offsets=payload, asynchronous=False)
                return True
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                code = error.code() if error is not None else None
                if code in (
                    KafkaError.REBALANCE_IN_PROGRESS,
                    KafkaError.ILLEGAL_GENERATION,
                    KafkaError.UNKNOWN_MEMBER_ID,
                    KafkaError._NO_OFFSET,  # noqa: SLF001 - librdkafka's public constant name
                ):
                    log.warning(
                        "commit refused, the group rebalanced first (%s); these events will "
                        "be delivered again to the new owner (at-least-once)",
                        exc,
                    )
                    return False
                if stop.is_set():
                    log.error("commit failed at shutdown: %s", exc)
                    return False
                log.warning("commit failed (%s); retrying in %.1fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def close(self) -> None:
        try:
            self.producer.flush(5)
        finally:
            self.consumer.close()


class _Reports:
    """Delivery reports of one publishing round."""

    def __init__(self) -> None:
        self.delivered: set[int] = set()
        self.errors: list[Any] = []

    def callback(self, record: OutRecord) -> Callable[[Any, Any], None]:
        def report(error: Any, _message: Any) -> None:
            if error is None:
                self.delivered.add(id(record))
            else:
                self.errors.append(error)

        return report
