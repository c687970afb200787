"""The worker's Kafka side on kafka-python: consume in batches, publish with per-record acks,
commit offsets. Broker outages are waited out with backoff, never fatal (the retry rules are
in :mod:`worker.transport`, the settings in :mod:`worker.client_settings`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka import errors as kerrors
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from streamscore.config import Config
from streamscore.wire import OutRecord
from worker.client_settings import kafka_python_consumer, kafka_python_producer
from worker.membership import Membership
from worker.transport import (
    Alone,
    Backoff,
    InstanceFenced,
    OnRevoke,
    Partition,
    Refused,
    Sending,
    Strikes,
    TransactionRefused,
    commit_until_done,
    record_identity,
    settle_until_acknowledged,
    transact_until_done,
)

log = logging.getLogger(__name__)

#: How long past the delivery timeout a transaction's flush may wait for its acks.
_FLUSH_MARGIN_S = 5.0


#: The group moved on (a rebalance, or this member was fenced): the transaction is aborted and
#: the batch belongs to the partitions' new owner.
GROUP_MOVED_ON = (
    CommitFailedError,
    kerrors.IllegalGenerationError,
    kerrors.UnknownMemberIdError,
    kerrors.RebalanceInProgressError,
    kerrors.FencedInstanceIdError,
)


#: Errors about the record itself that the client raises before sending, too.
REFUSED_FOR_GOOD = (
    kerrors.MessageSizeTooLargeError,
    kerrors.RecordListTooLargeError,
    kerrors.InvalidRecordError,
)

#: Broker errors that are not transient yet not the record's: the producer's session (its
#: sequence, id, epoch, transaction) or its rights as a producer. The next round's new
#: producer clears them, or the operator does; the records are sent again meanwhile.
PRODUCER_SESSION = (
    kerrors.OutOfOrderSequenceNumberError,
    kerrors.DuplicateSequenceNumberError,
    kerrors.UnknownProducerIdError,
    kerrors.InvalidProducerEpochError,
    kerrors.InvalidProducerIdMappingError,
    kerrors.ProducerFencedError,
    kerrors.InvalidTxnStateError,
    kerrors.TransactionCoordinatorFencedError,
    kerrors.TransactionalIdAuthorizationFailedError,
    kerrors.ClusterAuthorizationFailedError,
)


def answered(error: object) -> bool:
    """The broker answered with this error (a broker error code), not the client for lack
    of an answer (a timeout, a lost connection)."""
    return isinstance(error, kerrors.BrokerResponseError) and error.errno is not None


def refused_for_good(error: object) -> bool:
    """Sending the record again fails again: a size or validity error, or any broker error
    kafka-python does not mark retriable (``.retriable``: not-leader, timeouts,
    not-enough-replicas are), except a producer-session error (:data:`PRODUCER_SESSION`)."""
    if isinstance(error, REFUSED_FOR_GOOD):
        return True
    return (
        answered(error)
        and not getattr(error, "retriable", True)
        and not isinstance(error, PRODUCER_SESSION)
    )


_UNFINISHED = (
    "revoke: the batches in flight were not finished within %.0fs; their events may be "
    "scored again by the partitions' next owner"
)


class _Listener(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """kafka-python 3 runs the listener on its network thread, inside the group join. Async, so
    that a revoke can finish the batches in flight (their acks, their commits, which need this
    very network loop) before the member rejoins (:mod:`worker.pipeline`)."""

    def __init__(
        self,
        consumer: Any,
        on_assign: Callable[[list[Partition]], None],
        on_revoke: OnRevoke,
        wait_s: float,
    ) -> None:
        self._consumer = consumer
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._wait_s = wait_s

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        work = self._on_revoke(sorted((tp.topic, tp.partition) for tp in revoked))
        if work is None:
            return
        # This network loop serves the commits, so they are sent, not waited for, here; its
        # own sleep lets it go on (and the scoring thread's commits through it) meanwhile.
        net = self._consumer._coordinator._net  # noqa: SLF001 - kafka-python 3.0.12
        commits: list[Any] = []

        def commit(offsets: dict[Partition, int]) -> bool:
            payload = {
                TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                for (topic, partition), offset in offsets.items()
            }
            commits.append(self._consumer.commit_async(payload))
            return True

        deadline = time.monotonic() + self._wait_s
        while not work.try_finish(commit):
            if time.monotonic() > deadline:
                log.warning(_UNFINISHED, self._wait_s)
                return
            await net.sleep(0.002)
        for future in commits:
            while not future.is_done:
                if time.monotonic() > deadline:
                    log.warning(_UNFINISHED, self._wait_s)
                    return
                await net.sleep(0.002)
            if future.failed():
                log.warning(
                    "revoke: a commit of the batches in flight failed (%s); their events "
                    "will be scored again by the partitions' next owner",
                    future.exception,
                )

    async def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        await self.on_partitions_revoked(lost)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._on_assign(sorted((tp.topic, tp.partition) for tp in assigned))


class _FenceSpy(logging.Handler):
    """Sees kafka-python's heartbeat thread report this static member fenced.

    kafka-python 3.0.12 only logs that fence (``kafka.coordinator.heartbeat``) and stops
    heartbeating: the consumer keeps its assignment and goes on fetching, a zombie, until a
    commit fails. The spy lets the next ``poll`` raise :class:`InstanceFenced` instead.
    """

    LOGGER = "kafka.coordinator.heartbeat"

    def __init__(self, instance: str) -> None:
        super().__init__(logging.ERROR)
        self.instance = instance
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "fenced" in str(record.msg) and any(
            self.instance in str(arg) for arg in (record.args or ())
        ):
            self.seen.set()

    def install(self) -> _FenceSpy:
        logging.getLogger(self.LOGGER).addHandler(self)
        return self

    def remove(self) -> None:
        logging.getLogger(self.LOGGER).removeHandler(self)


class _Sending:
    """One batch handed to kafka-python's producer (:meth:`KafkaPythonTransport.send`)."""

    __slots__ = ("error", "records", "refused", "sent", "unsent")

    def __init__(self, records: Sequence[OutRecord]) -> None:
        self.records = records
        self.sent: list[tuple[OutRecord, Any]] = []  # (record, its future)
        self.unsent: list[OutRecord] = []  # send() raised: sent again in the next round
        self.error: Any = None
        self.refused: list[Refused] = []

    def acknowledged(self) -> bool:
        return all(future.is_done for _, future in self.sent)


class KafkaPythonTransport:
    """Consumer + producer pair for one group member."""

    def __init__(
        self, cfg: Config, *, client_id: str, membership: Membership | None = None
    ) -> None:
        self.cfg = cfg
        self.exactly_once = membership is not None and membership.exactly_once
        settings = kafka_python_consumer(cfg, client_id, membership)
        self.consumer = KafkaConsumer(**settings)
        self._fetch_wait_ms = int(settings["fetch_max_wait_ms"])
        instance = membership.group_instance_id if membership is not None else None
        self._fence_spy = _FenceSpy(instance).install() if instance else None
        self._producer_settings = kafka_python_producer(cfg, client_id, membership)
        try:
            self.producer = self._new_producer()
        except BaseException:  # brokers away (bootstrap, init_transactions): leave no consumer
            self.consumer.close(autocommit=False)
            if self._fence_spy is not None:
                self._fence_spy.remove()
            raise
        self.backoff = Backoff.from_config(cfg.worker)
        self.delivery_timeout_s = cfg.worker.delivery_timeout_ms / 1000
        #: A transaction lost records: replace the producer instead of aborting on it.
        self._renew_next = False

    # ------------------------------------------------------------------ consuming

    def subscribe(
        self,
        topic: str,
        on_assign: Callable[[list[Partition]], None],
        on_revoke: OnRevoke,
    ) -> None:
        # Long enough for the scoring thread to finish its batch and wait out the acks.
        wait_s = self.delivery_timeout_s + self.cfg.kafka.request_timeout_ms / 1000
        listener = _Listener(self.consumer, on_assign, on_revoke, wait_s)
        self.consumer.subscribe([topic], listener=listener)
        self._learn_partitions(topic)

    def _learn_partitions(self, topic: str) -> None:
        """Wait (bounded by the request timeout) until the consumer's own metadata holds
        ``topic``'s partitions, before the first poll sends the group join.

        The group leader assigns from its own metadata. A join answered before the consumer's
        first metadata response assigns nothing of the topic; the leader's later rejoin does
        not always run the assignment again (a static member rejoining is handed its old,
        empty one), so the member sat ready-to-score with no partition until the join
        watchdog replaced it (seen on Apache Kafka).
        """
        cluster = self.consumer._client.cluster  # noqa: SLF001 - kafka-python 3.0.12
        net = self.consumer._net  # noqa: SLF001
        manager = self.consumer._manager  # noqa: SLF001
        deadline = time.monotonic() + self.cfg.kafka.request_timeout_ms / 1000
        while not cluster.partitions_for_topic(topic):
            left_ms = (deadline - time.monotonic()) * 1000
            if left_ms <= 0:
                log.warning("no metadata for topic %r yet: joining the group anyway", topic)
                return
            try:
                net.run(manager.wait_for, cluster.request_update(), min(left_ms, 1000))
            except KafkaError:
                time.sleep(0.05)

    def assign(self, topic: str, partitions: list[int]) -> None:
        """Consume these partitions without joining the group; positions start at the group's
        committed offsets (earliest without one) and commits go under ``group_id``."""
        self.consumer.assign([TopicPartition(topic, p) for p in partitions])

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]:
        if self._fence_spy is not None and self._fence_spy.seen.is_set():
            raise InstanceFenced(_fenced(self.cfg))
        self._follow_wait(timeout_ms)
        try:
            polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except kerrors.FencedInstanceIdError as exc:
            raise InstanceFenced(_fenced(self.cfg)) from exc
        if not polled:
            return []
        if len(polled) == 1:
            return list(next(iter(polled.values())))
        out: list[Any] = []
        for records in polled.values():
            out.extend(records)
        return out

    def _follow_wait(self, timeout_ms: int) -> None:
        """Let the broker hold a fetch as long as this poll waits (at least the configured
        fetch wait, at most 500 ms). An idle worker's long polls then send a fetch every
        ~500 ms instead of every 10 ms (an idle worker used 25 % of a core); a busy worker's
        short polls keep the short wait. kafka-python reads the setting for every fetch it
        builds; it has no public call to change it."""
        config = getattr(getattr(self.consumer, "_fetcher", None), "config", None)
        if not isinstance(config, dict):
            return
        wait = min(max(timeout_ms, self._fetch_wait_ms), 500)
        if config.get("fetch_max_wait_ms") != wait:
            config["fetch_max_wait_ms"] = wait

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

    def publish(self, records: Sequence[OutRecord], stop: threading.Event) -> list[Refused]:
        """Send every record and wait until the broker acknowledged each one (retried as
        :func:`worker.transport.publish_until_acknowledged` says); the records refused for good
        are returned, not retried."""
        return self.settle(self.send(records), stop)

    def send(self, records: Sequence[OutRecord]) -> _Sending:
        """Hand every record to the producer (its sender thread writes them), not waiting."""
        sending = _Sending(records)
        send = self.producer.send
        for r in records:
            try:
                future = send(
                    r.topic, value=r.value, key=r.key, headers=r.headers, partition=r.partition
                )
            except REFUSED_FOR_GOOD as exc:  # over max_request_size: checked before sending
                sending.refused.append(Refused(r, f"{type(exc).__name__}: {exc}"))
                continue
            except KafkaError as exc:  # no metadata in time, say: sent again next round
                sending.unsent.append(r)
                if sending.error is None:
                    sending.error = exc
                continue
            sending.sent.append((r, future))
        return sending

    def settle(self, sending: Sending, stop: threading.Event) -> list[Refused]:
        """Wait for the acknowledgements of a batch :meth:`send` gave the producer, retried as
        :meth:`publish`; returns the records refused for good (see
        :func:`worker.transport.settle_until_acknowledged`)."""
        assert isinstance(sending, _Sending), "a batch sent by another transport"
        return settle_until_acknowledged(
            sending,
            send=self.send,
            outcome=self._outcome,
            flush=lambda: self.producer.flush(timeout=self.delivery_timeout_s),
            renew_producer=self._renew_producer,
            backoff=self.backoff,
            stop=stop,
        )

    def _outcome(
        self, sending: _Sending, refused: list[Refused], strikes: Strikes
    ) -> tuple[list[OutRecord], Any]:
        """Wait (up to the delivery timeout) for each future of ``sending``: ``(the records
        without an ack, the first error)``; those refused for good (:func:`refused_for_good`,
        or out of ``strikes``) go to ``refused``. Only this batch's futures are waited for,
        not the producer's whole queue (a flush would also wait for the next batch, in
        flight)."""
        deadline = time.monotonic() + self.delivery_timeout_s
        first_error: Any = sending.error
        failed: list[tuple[OutRecord, Any]] = []
        acknowledged = False
        for record, future in sending.sent:
            if not future.is_done:
                try:
                    future.get(timeout=max(deadline - time.monotonic(), 0.0))
                except Exception:  # judged from the future below
                    log.debug("waiting for an ack", exc_info=True)
            if future.is_done and future.succeeded():
                acknowledged = True
                continue
            error = future.exception if future.is_done else "no ack before timeout"
            if refused_for_good(error):
                refused.append(Refused(record, f"{type(error).__name__}: {error}"))
                continue
            failed.append((record, error))
            if first_error is None:
                first_error = error
        again = strikes.judge(failed, acknowledged=acknowledged, answered=answered, refused=refused)
        return list(sending.unsent) + again, first_error

    def _renew_producer(self) -> None:
        """A fresh producer after failed deliveries.

        An idempotent producer that lost its broker (a restart, a failover) can end in a fatal
        state in which it aborts every batch; a new one starts a new producer session.
        """
        try:
            fresh = self._new_producer()
        except KafkaError as exc:  # every broker away: keep the old one, the next round retries
            log.warning("no new producer yet: %s", exc)
            return
        try:
            self.producer.close(timeout=1)
        except Exception:  # the old producer is being discarded anyway
            log.debug("closing the failed producer raised", exc_info=True)
        self.producer = fresh

    def _new_producer(self) -> Any:
        """A producer. kafka-python bootstraps in the constructor (fails while every broker is
        away); a transactional one has called ``init_transactions``, which fences an earlier
        producer with the same transactional id and aborts what it left open."""
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
        so the group coordinator refuses them from a member the group has moved past (a zombie).
        See :func:`worker.transport.transact_until_done` for retries and results.
        """
        payload = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()
        }

        strikes = Strikes()  # across the attempts of this transaction

        def attempt(alone: Alone) -> None:
            producer = self.producer
            producer.begin_transaction()
            send = producer.send
            refused: list[Refused] = []
            futures: list[tuple[OutRecord, Any]] = []
            flush_s = self.delivery_timeout_s + _FLUSH_MARGIN_S
            for r in records:
                single = bool(alone) and record_identity(r) in alone
                if single:  # in a record batch of its own: flushed before and after
                    producer.flush(timeout=flush_s)
                    self._check_transaction(futures, refused, len(records), strikes)
                try:
                    futures.append((r, send(r.topic, r.value, r.key, r.headers, r.partition)))
                except REFUSED_FOR_GOOD as exc:  # over max_request_size: checked before sending
                    refused.append(Refused(r, f"{type(exc).__name__}: {exc}"))
                except KafkaError:  # an earlier batch failed: the transaction is abortable
                    producer.flush(timeout=flush_s)
                    self._check_transaction(
                        futures, refused, len(records), strikes
                    )  # why, if known
                    raise
                if single:
                    producer.flush(timeout=flush_s)
                    self._check_transaction(futures, refused, len(records), strikes)
            # Every record acknowledged before the offsets join the transaction: kafka-python
            # 3.0.12 can commit a transaction whose batches expired during a broker restart
            # (its sender thread fails in reset_producer_id and never marks the transaction
            # abortable), which would commit the inputs without their outputs.
            producer.flush(timeout=flush_s)
            self._check_transaction(futures, refused, len(records), strikes)
            producer.send_offsets_to_transaction(payload, self.consumer.group_metadata())
            producer.commit_transaction()

        return transact_until_done(
            attempt,
            self._abort_or_renew,
            transient=(KafkaError,),
            moved_on=lambda exc: isinstance(exc, GROUP_MOVED_ON),
            backoff=self.backoff,
            stop=stop,
            size=len(records),
        )

    def _check_transaction(
        self,
        futures: list[tuple[OutRecord, Any]],
        refused: list[Refused],
        size: int,
        strikes: Strikes,
    ) -> None:
        """Raise if a record sent so far in the transaction failed (after a flush): the
        records refused for good (:func:`refused_for_good`, or out of ``strikes``:
        :class:`TransactionRefused`), else a ``KafkaError`` for one lost or out of sequence
        (that producer is replaced)."""
        unacked = []
        failed: list[tuple[OutRecord, Any]] = []
        acknowledged = False
        for r, f in futures:
            if f.is_done and f.succeeded():
                acknowledged = True
                continue
            error = f.exception if f.is_done else "no ack"
            if refused_for_good(error):
                refused.append(Refused(r, f"{type(error).__name__}: {error}"))
            else:
                unacked.append(f)
                failed.append((r, error))
        strikes.judge(failed, acknowledged=acknowledged, answered=answered, refused=refused)
        if unacked:
            self._renew_next = True
        if refused:
            raise TransactionRefused(refused)
        if unacked:
            first = unacked[0].exception if unacked[0].is_done else "no ack"
            raise KafkaError(
                f"{len(unacked)} of {size} records of the transaction were not "
                f"acknowledged ({first}); aborting it"
            )

    def _abort_or_renew(self) -> None:
        """Abort the open transaction; a producer that cannot (fenced, fatal) or that lost
        records of it is replaced (the new one's ``init_transactions`` aborts what it left)."""
        if self._renew_next:
            old = self.producer
            self._renew_producer()
            self._renew_next = self.producer is old  # brokers away: try again next time
            return
        try:
            self.producer.abort_transaction()
        except Exception:
            log.debug("abort_transaction failed; renewing the producer", exc_info=True)
            self._renew_producer()

    # ------------------------------------------------------------------ committing

    def commit(self, offsets: dict[Partition, int], stop: threading.Event) -> bool:
        """Commit ``partition → next offset``. False if the group moved on (a rebalance)."""
        payload = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()
        }

        def attempt() -> None:
            try:
                self.consumer.commit(payload)
            except kerrors.FencedInstanceIdError as exc:
                raise InstanceFenced(_fenced(self.cfg)) from exc

        return commit_until_done(
            attempt,
            transient=(KafkaError,),
            refused=lambda exc: isinstance(exc, CommitFailedError),
            backoff=self.backoff,
            stop=stop,
        )

    def close(self) -> None:
        if self._fence_spy is not None:
            self._fence_spy.remove()
        try:
            self.producer.close(timeout=5)
        finally:
            self.consumer.close(autocommit=False)


def _fenced(cfg: Config) -> str:
    return (
        f"the group coordinator fenced this static member (FencedInstanceIdError: a consumer "
        f"with the same group.instance.id joined group {cfg.kafka.group_id!r})"
    )
