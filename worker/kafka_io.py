"""The worker's Kafka side on kafka-python: consume in batches, publish with per-record acks,
commit offsets, or (exactly-once) publish and commit offsets in one transaction per batch.
Broker outages are waited out with backoff, never fatal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka import errors as kerrors
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from streamscore.config import Config
from streamscore.kafka_admin import client_kwargs
from worker.membership import Membership
from worker.records import OutRecord

log = logging.getLogger(__name__)

Partition = tuple[str, int]


class Transport(Protocol):
    """What the scoring loop needs of a Kafka client pair (kafka-python or confluent-kafka)."""

    def subscribe(
        self,
        topic: str,
        on_assign: Callable[[list[Partition]], None],
        on_revoke: Callable[[list[Partition]], None],
    ) -> None: ...

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]: ...

    def assignment(self) -> list[Partition]: ...

    def partition_count(self, topic: str) -> int | None: ...

    def highwater(self, topic: str, partition: int) -> int | None: ...

    def position(self, topic: str, partition: int) -> int | None: ...

    def seek(self, topic: str, partition: int, offset: int) -> None: ...

    def publish(self, records: Sequence[OutRecord], stop: threading.Event) -> None: ...

    def commit(self, offsets: dict[Partition, int], stop: threading.Event) -> bool: ...

    def publish_transaction(
        self, records: Sequence[OutRecord], offsets: dict[Partition, int], stop: threading.Event
    ) -> bool: ...

    def close(self) -> None: ...


class DeliveryFailed(Exception):
    """Outputs could not be acknowledged before shutdown; their offsets are not committed."""


#: The group moved on (a rebalance, or this member was fenced): the transaction is aborted and
#: the batch belongs to the partitions' new owner.
GROUP_MOVED_ON = (
    CommitFailedError,
    kerrors.IllegalGenerationError,
    kerrors.UnknownMemberIdError,
    kerrors.RebalanceInProgressError,
    kerrors.FencedInstanceIdError,
)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        on_assign: Callable[[list[Partition]], None],
        on_revoke: Callable[[list[Partition]], None],
    ) -> None:
        self._on_assign = on_assign
        self._on_revoke = on_revoke

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._on_revoke(sorted((tp.topic, tp.partition) for tp in revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._on_assign(sorted((tp.topic, tp.partition) for tp in assigned))


class KafkaPythonTransport:
    """Consumer + producer pair for one group member."""

    def __init__(
        self, cfg: Config, *, client_id: str, membership: Membership | None = None
    ) -> None:
        self.cfg = cfg
        k, w = cfg.kafka, cfg.worker
        self.membership = membership
        self.exactly_once = membership is not None and membership.exactly_once
        common = client_kwargs(k)
        common["client_id"] = client_id
        self.consumer = KafkaConsumer(
            **common,
            group_id=k.group_id,
            group_instance_id=membership.group_instance_id if membership else None,
            # Exactly-once: never score what an upstream transaction aborted.
            isolation_level="read_committed" if self.exactly_once else "read_uncommitted",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=k.session_timeout_ms,
            heartbeat_interval_ms=k.heartbeat_interval_ms,
            max_poll_interval_ms=k.max_poll_interval_ms,
            max_poll_records=w.max_batch_records,
            fetch_max_bytes=w.fetch_max_bytes,
            max_partition_fetch_bytes=w.max_partition_fetch_bytes,
            fetch_max_wait_ms=min(max(w.max_wait_ms, 10), 500),
        )
        self._producer_settings: dict[str, Any] = {
            **common,
            "acks": "all",
            "linger_ms": w.linger_ms,
            "batch_size": w.producer_batch_bytes,
            "compression_type": None if w.compression == "none" else w.compression,
            "delivery_timeout_ms": max(w.delivery_timeout_ms, w.linger_ms + k.request_timeout_ms),
        }
        if self.exactly_once:
            assert membership is not None
            self._producer_settings |= {
                "transactional_id": membership.transactional_id,
                "enable_idempotence": True,
                "transaction_timeout_ms": max(60_000, 2 * w.delivery_timeout_ms),
            }
        try:
            self.producer = self._new_producer()
        except BaseException:  # brokers away (init_transactions timed out): leave no consumer
            self.consumer.close(autocommit=False)
            raise
        self.backoff_s = w.retry_backoff_ms / 1000
        self.max_backoff_s = w.max_retry_backoff_ms / 1000
        self.delivery_timeout_s = w.delivery_timeout_ms / 1000

    # ------------------------------------------------------------------ consuming

    def subscribe(
        self,
        topic: str,
        on_assign: Callable[[list[Partition]], None],
        on_revoke: Callable[[list[Partition]], None],
    ) -> None:
        self.consumer.subscribe([topic], listener=_Listener(on_assign, on_revoke))

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]:
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        if not polled:
            return []
        if len(polled) == 1:
            return list(next(iter(polled.values())))
        out: list[Any] = []
        for records in polled.values():
            out.extend(records)
        return out

    def assignment(self) -> list[Partition]:
        return sorted((tp.topic, tp.partition) for tp in self.consumer.assignment())

    def partition_count(self, topic: str) -> int | None:
        """Partitions of ``topic`` from the cluster metadata (None when unknown)."""
        try:
            partitions = self.producer.partitions_for(topic)
        except KafkaError as exc:
            log.warning("no metadata for topic %r: %s", topic, exc)
            return None
        return len(partitions) if partitions else None

    def highwater(self, topic: str, partition: int) -> int | None:
        value = self.consumer.highwater(TopicPartition(topic, partition))
        return int(value) if value is not None else None

    def seek(self, topic: str, partition: int, offset: int) -> None:
        try:
            self.consumer.seek(TopicPartition(topic, partition), offset)
        except Exception:  # the partition moved on meanwhile: its owner uses the commit
            log.debug("seek %s[%d] to %d failed", topic, partition, offset, exc_info=True)

    def position(self, topic: str, partition: int) -> int | None:
        try:
            return int(self.consumer.position(TopicPartition(topic, partition), timeout_ms=100))
        except Exception:  # noqa: BLE001
            return None

    # ------------------------------------------------------------------ producing

    def publish(self, records: Sequence[OutRecord], stop: threading.Event) -> None:
        """Send every record and wait until the broker acknowledged each one.

        Failed sends are retried with exponential backoff for as long as the broker is away.
        Raises :class:`DeliveryFailed` only when ``stop`` is set and records are still
        unacknowledged, so the caller does not commit their offsets.
        """
        pending = list(records)
        backoff = self.backoff_s
        while pending:
            send = self.producer.send
            futures = [
                send(r.topic, value=r.value, key=r.key, headers=r.headers, partition=r.partition)
                for r in pending
            ]
            try:
                self.producer.flush(timeout=self.delivery_timeout_s)
            except KafkaError as exc:  # KafkaTimeoutError: unfinished ones count as failed
                log.debug("flush: %s", exc)
            failed: list[OutRecord] = []
            first_error: Any = None
            for record, future in zip(pending, futures, strict=True):
                if future.is_done and future.succeeded():
                    continue
                failed.append(record)
                if first_error is None:
                    first_error = future.exception if future.is_done else "no ack before timeout"
            if not failed:
                return
            if stop.is_set():
                raise DeliveryFailed(
                    f"{len(failed)} of {len(records)} records unacknowledged at shutdown: "
                    f"{first_error}"
                )
            log.warning(
                "%d of %d records not acknowledged (%s); retrying in %.1fs",
                len(failed),
                len(records),
                first_error,
                backoff,
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
            while not self._renew_producer():  # the broker is still away: no producer yet
                if stop.is_set():
                    raise DeliveryFailed(
                        f"{len(failed)} of {len(records)} records unacknowledged at shutdown: "
                        f"{first_error}"
                    )
                stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            pending = failed

    def _renew_producer(self) -> bool:
        """A fresh producer after failed deliveries; False while the brokers cannot be reached.

        An idempotent producer that lost its broker (a restart, a failover) can end in a fatal
        state in which it aborts every batch; a new one starts a new producer session. A new
        kafka-python producer bootstraps in its constructor, which fails while every broker is
        away (Apache Kafka takes 10-50 s to restart here): the old one is kept until then.
        """
        try:
            fresh = self._new_producer()
        except KafkaError as exc:
            log.warning("no new producer yet: %s", exc)
            return False
        try:
            self.producer.close(timeout=1)
        except Exception:  # the old producer is being discarded anyway
            log.debug("closing the failed producer raised", exc_info=True)
        self.producer = fresh
        return True

    def _new_producer(self) -> Any:
        """A producer; a transactional one has called ``init_transactions``, which fences an
        earlier producer with the same transactional id and aborts what it left open."""
        producer = KafkaProducer(**self._producer_settings)
        if self.exactly_once:
            try:
                producer.init_transactions()
            except BaseException:
                producer.close(timeout=1)
                raise
        return producer

    # ------------------------------------------------------------------ exactly-once

    def publish_transaction(
        self, records: Sequence[OutRecord], offsets: dict[Partition, int], stop: threading.Event
    ) -> bool:
        """Publish ``records`` and commit ``offsets`` for the group in one transaction.

        The offsets go with the consumer's group metadata (generation, member id, instance id),
        so the group coordinator refuses them from a member the group has moved past (a zombie):
        the transaction is aborted and False is returned; the caller rewinds the partitions it
        keeps to the batch's first offsets, and the new owner of the others redoes them.
        A broker outage aborts and retries the whole transaction with backoff; with ``stop``
        set it raises :class:`DeliveryFailed` instead (nothing of the batch is visible).
        """
        payload = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()
        }
        backoff = self.backoff_s
        while True:
            try:
                producer = self.producer
                producer.begin_transaction()
                send = producer.send
                for r in records:
                    send(
                        r.topic, value=r.value, key=r.key, headers=r.headers, partition=r.partition
                    )
                producer.send_offsets_to_transaction(payload, self.consumer.group_metadata())
                producer.commit_transaction()
                return True
            except GROUP_MOVED_ON as exc:
                self._abort_or_renew()
                log.warning(
                    "transaction aborted, the group moved on (%s); the new owner scores these "
                    "events, nothing of them is visible to read_committed readers",
                    exc,
                )
                return False
            except KafkaError as exc:
                self._abort_or_renew()
                if stop.is_set():
                    raise DeliveryFailed(
                        f"transaction of {len(records)} records not committed at shutdown: {exc}"
                    ) from exc
                log.warning("transaction failed (%s); retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def _abort_or_renew(self) -> None:
        """Abort the open transaction; a producer that cannot (fenced, fatal) is replaced."""
        try:
            self.producer.abort_transaction()
        except Exception:
            log.debug("abort_transaction failed; renewing the producer", exc_info=True)
            self._renew_producer()  # broker away: the next attempt tries again

    # ------------------------------------------------------------------ committing

    def commit(self, offsets: dict[Partition, int], stop: threading.Event) -> bool:
        """Commit ``partition → next offset``. False if the group moved on (a rebalance)."""
        payload = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()
        }
        backoff = self.backoff_s
        while True:
            try:
                self.consumer.commit(payload)
                return True
            except CommitFailedError as exc:
                log.warning(
                    "commit refused, the group rebalanced first (%s); these events will be "
                    "delivered again to the new owner (at-least-once)",
                    exc,
                )
                return False
            except KafkaError as exc:
                if stop.is_set():
                    log.error("commit failed at shutdown: %s", exc)
                    return False
                log.warning("commit failed (%s); retrying in %.1fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def close(self) -> None:
        try:
            self.producer.close(timeout=5)
        finally:
            self.consumer.close(autocommit=False)
