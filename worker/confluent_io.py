"""The worker's Kafka side on confluent-kafka (librdkafka): the same contract as
:class:`worker.kafka_io.KafkaPythonTransport` (:class:`worker.transport.Transport`), several times
the client throughput. The retry rules are in :mod:`worker.transport`, the settings in
:mod:`worker.client_settings`; this module keeps what is librdkafka's own.

Chosen with ``[kafka] transport = "confluent-kafka"``. Delivery is checked per record through
delivery reports, counted per batch (:meth:`ConfluentTransport.send` returns the batch's
ticket); offsets are committed synchronously after every report of the batch arrived.

After losing its brokers, the consumer resumes every assigned partition from the offset the
broker has committed for the group (the beginning when it has none), as a restarted worker
would, instead of from librdkafka's in-memory fetch position: a broker that came back without
its logs (the embedded memory-only broker after a restart) would otherwise be read from the old
position and the new events below it skipped.

Two librdkafka failures end the client pair (:class:`worker.transport.ClientsBroken`; the loop
builds a new pair that resumes from the group's commits): a consumer that went fatal (seen on
Apache Kafka: after a broker restart a static member was fenced by its own rejoin, and a fatal
consumer returns nothing ever again), and a transactional call that outlives its own timeout
(``send_offsets_to_transaction`` blocked for minutes while the group coordinator was away,
librdkafka issues #5456 and #5511). Those calls run on a helper thread with a deadline; a
producer stuck past it is abandoned, and the new pair's ``init_transactions`` fences it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from streamscore.config import Config
from streamscore.wire import OutRecord
from worker.client_settings import confluent_consumer, confluent_producer
from worker.membership import Membership
from worker.transport import (
    Alone,
    Backoff,
    ClientsBroken,
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

T = TypeVar("T")

#: Producers abandoned inside a call that never returned: kept referenced so that no other
#: thread runs their destructor (which would wait for the stuck call) while this process lives.
_ABANDONED: list[Any] = []


class _CallThread:
    """One daemon thread that runs the calls given to :meth:`submit` in order. A daemon (not a
    ``ThreadPoolExecutor``, whose threads are joined at exit): a call stuck inside librdkafka
    must not keep the process from exiting."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._run, name="librdkafka-call", daemon=True).start()

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._calls.put((call, future))
        return future

    def shutdown(self) -> None:
        self._calls.put(None)

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            call, future = item
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)


#: How long past its own timeout a transactional call may take before it counts as stuck.
_DEADLINE_MARGIN_S = 5.0


#: Kafka protocol error codes that are transient (``RetriableException`` in the Java client:
#: not-leader, timeouts, not-enough-replicas, a partition being moved...). librdkafka retries
#: these itself; when one still reaches a delivery report, the record is produced again.
#: (A delivery report's ``KafkaError.retriable()`` is always False, whatever the code: only
#: errors from librdkafka's ``rd_kafka_error_t`` calls carry the flag. So the codes are listed.)
_TRANSIENT_CODES = frozenset(
    {
        2,  # CORRUPT_MESSAGE (the bytes were damaged on the way)
        3,  # UNKNOWN_TOPIC_OR_PART (the topic keeper recreates it)
        5,  # LEADER_NOT_AVAILABLE
        6,  # NOT_LEADER_OR_FOLLOWER
        7,  # REQUEST_TIMED_OUT
        8,  # BROKER_NOT_AVAILABLE
        9,  # REPLICA_NOT_AVAILABLE
        13,  # NETWORK_EXCEPTION
        14,  # COORDINATOR_LOAD_IN_PROGRESS
        15,  # COORDINATOR_NOT_AVAILABLE
        16,  # NOT_COORDINATOR
        19,  # NOT_ENOUGH_REPLICAS
        20,  # NOT_ENOUGH_REPLICAS_AFTER_APPEND
        41,  # NOT_CONTROLLER
        51,  # CONCURRENT_TRANSACTIONS
        56,  # KAFKA_STORAGE_ERROR
        74,  # FENCED_LEADER_EPOCH
        75,  # UNKNOWN_LEADER_EPOCH
        78,  # OFFSET_NOT_AVAILABLE
        80,  # PREFERRED_LEADER_NOT_AVAILABLE
        83,  # ELIGIBLE_LEADERS_NOT_AVAILABLE
        89,  # THROTTLING_QUOTA_EXCEEDED
    }
)

#: Broker errors that are not transient yet not the record's: the producer's session (its
#: sequence, id, epoch, transaction) or its rights as a producer. A new producer clears them,
#: or the operator does; the records are produced again meanwhile.
_PRODUCER_SESSION_CODES = frozenset(
    {
        31,  # CLUSTER_AUTHORIZATION_FAILED (idempotent writes not allowed)
        45,  # OUT_OF_ORDER_SEQUENCE_NUMBER
        46,  # DUPLICATE_SEQUENCE_NUMBER
        47,  # INVALID_PRODUCER_EPOCH
        48,  # INVALID_TXN_STATE
        49,  # INVALID_PRODUCER_ID_MAPPING
        52,  # TRANSACTION_COORDINATOR_FENCED
        53,  # TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        59,  # UNKNOWN_PRODUCER_ID
        90,  # PRODUCER_FENCED
    }
)


def _code(error: Any) -> int | None:
    code = getattr(error, "code", None)
    return code() if callable(code) else None


def _answered(error: Any) -> bool:
    """The broker answered with this error (a broker error code: positive), not librdkafka
    for lack of an answer (negative codes: ``_MSG_TIMED_OUT``, ``_TRANSPORT``, ...)."""
    code = _code(error)
    return code is not None and code > 0


def _refused_for_good(error: Any) -> bool:
    """Producing the record again fails again: a size or validity error (also raised by
    ``produce`` itself), or any broker error that is neither transient
    (:data:`_TRANSIENT_CODES`) nor the producer's session (:data:`_PRODUCER_SESSION_CODES`)."""
    from confluent_kafka import KafkaError

    code = _code(error)
    if code in (
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
    ):
        return True
    return (
        code is not None
        and code > 0
        and code not in _TRANSIENT_CODES
        and code not in _PRODUCER_SESSION_CODES
        and not error.fatal()
    )


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


def _originals(
    failed: list[tuple[Any, OutRecord]], sent: Sequence[OutRecord]
) -> list[tuple[Any, OutRecord]]:
    """The records as sent (source headers included) for those a delivery report rebuilt:
    a report may come without the message's headers."""
    if not failed:
        return failed
    by_identity = {record_identity(r): r for r in sent}
    return [(error, by_identity.get(record_identity(r), r)) for error, r in failed]


class _Ticket:
    """One batch produced by :meth:`ConfluentTransport.send`: its records' delivery reports
    count it down; the failed ones are kept to be produced again."""

    __slots__ = ("error", "failed", "left", "producer", "records", "refused", "unsent")

    def __init__(self, records: Sequence[OutRecord], producer: Any) -> None:
        self.records = records
        self.producer = producer  # reports come from the producer that sent them
        self.left = 0
        self.failed: list[tuple[Any, OutRecord]] = []
        self.refused: list[Refused] = []
        self.unsent: list[OutRecord] = []
        self.error: Any = None

    def report(self, error: Any, message: Any) -> None:
        """librdkafka's delivery report for one record (served by ``poll``/``flush``)."""
        self.left -= 1
        if error is not None:
            partition = message.partition()
            self.failed.append(
                (
                    error,
                    OutRecord(
                        message.topic(),
                        message.key(),
                        message.value(),
                        list(message.headers() or ()),
                        partition if partition >= 0 else None,
                    ),
                )
            )

    def acknowledged(self) -> bool:
        if self.left > 0:
            self.producer.poll(0)  # serve the reports that arrived
        return self.left <= 0


class ConfluentTransport:
    def __init__(
        self, cfg: Config, *, client_id: str, membership: Membership | None = None
    ) -> None:
        try:
            from confluent_kafka import Consumer, Producer
        except ImportError as exc:  # pragma: no cover - requirements.lock installs it
            from streamscore.exceptions import ConfigError

            raise ConfigError(
                '[kafka] transport = "confluent-kafka" needs the confluent-kafka package, '
                "which requirements.lock pins: pip install -r requirements.lock"
            ) from exc
        self.exactly_once = membership is not None and membership.exactly_once
        self.consumer = Consumer(
            {**confluent_consumer(cfg, client_id, membership), "error_cb": self._on_client_error}
        )
        self._producer_settings: dict[str, Any] = confluent_producer(cfg, client_id, membership)
        self._producer_class = Producer
        self._txn_timeout_s = max(cfg.kafka.request_timeout_ms / 1000, 10.0)
        self._abort_pending = False
        #: Why these clients cannot go on (a fatal consumer, a stuck call); None while healthy.
        self._broken: str | None = None
        #: The consumer went fatal because the coordinator fenced its group.instance.id.
        self._fenced = False
        self._calls: _CallThread | None = None
        try:
            self.producer = self._new_producer()
        except BaseException:  # brokers away (init_transactions timed out): leave no consumer
            self.consumer.close()
            raise
        self.backoff = Backoff.from_config(cfg.worker)
        self.delivery_timeout_s = cfg.worker.delivery_timeout_ms / 1000
        #: Set when the consumer lost its brokers; the next poll re-positions from the commits.
        self._reposition = False
        self._producer_stale = False
        self._reposition_timeout_s = min(cfg.kafka.request_timeout_ms / 1000, 5.0)

    # ------------------------------------------------------------------ consuming

    def subscribe(
        self,
        topic: str,
        on_assign: Callable[[list[Partition]], None],
        on_revoke: OnRevoke,
    ) -> None:
        def assigned(_consumer: Any, partitions: list[Any]) -> None:
            on_assign(sorted((p.topic, p.partition) for p in partitions))

        def revoked(_consumer: Any, partitions: list[Any]) -> None:
            # Inside poll, on the scoring thread: the batches in flight are finished (acked,
            # committed) before this returns and librdkafka gives the partitions up.
            work = on_revoke(sorted((p.topic, p.partition) for p in partitions))
            if work is not None:  # (not expected: librdkafka calls back on the polling thread)
                while not work.try_finish(lambda offsets: self.commit(offsets, threading.Event())):
                    time.sleep(0.002)

        self.consumer.subscribe([topic], on_assign=assigned, on_revoke=revoked)

    def assign(self, topic: str, partitions: list[int]) -> None:
        """Consume these partitions without joining the group (committed offsets first)."""
        from confluent_kafka import TopicPartition

        self.consumer.assign([TopicPartition(topic, p) for p in partitions])

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]:
        if self._broken is not None:
            raise self._broken_error()
        if self._reposition and not self._resume_from_commits():
            time.sleep(self.backoff.first_s)
            return []
        # consume() waits until it has num_messages or the timeout passed; the worker wants
        # what is queued now, or else the first message to arrive within the timeout.
        consume = self.consumer.consume
        messages = consume(num_messages=max_records, timeout=0)
        if not messages and timeout_ms > 0:
            first = self.consumer.poll(timeout_ms / 1000)
            if first is None:
                return []
            messages = [first]
            if max_records > 1:
                messages.extend(consume(num_messages=max_records - 1, timeout=0))
        out = []
        for message in messages:
            error = message.error()
            if error is not None:
                if _is_fatal(error):  # e.g. fenced: librdkafka reports it here, not in error_cb
                    self._broken = f"the consumer went fatal ({error.str()})"
                    self._fenced = _is_fence(error)
                    log.error("kafka client: fatal error %s; these clients will be replaced", error)
                    raise self._broken_error()
                log.warning("consume error: %s", error)
                continue
            out.append(Record(message))
        return out

    def _broken_error(self) -> ClientsBroken:
        assert self._broken is not None
        return InstanceFenced(self._broken) if self._fenced else ClientsBroken(self._broken)

    def _on_client_error(self, error: Any) -> None:
        """librdkafka's error callback (called from ``poll``/``consume``, this thread)."""
        from confluent_kafka import KafkaError

        if error.fatal():
            # A fatal client never recovers; the next poll or transaction hands it back.
            self._broken = f"the consumer went fatal ({error.str()})"
            self._fenced = _is_fence(error)
            log.error("kafka client: fatal error %s; these clients will be replaced", error)
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:  # noqa: SLF001
            # Positions are re-read from the broker's commits once it answers again (events
            # of a batch being gathered during the outage may then be scored twice: at-least-
            # once). The next batch goes out on a new producer: after the embedded broker came
            # back empty, the old idempotent producer's records were acknowledged and missing
            # from the topic (a broker that lost its producer-id state can take them for
            # duplicates); a new producer gets a new id from the broker.
            self._reposition = True
            self._producer_stale = True
            log.warning("kafka client: %s; waiting for the brokers", error)
        else:
            log.debug("kafka client: %s", error)

    def _resume_from_commits(self) -> bool:
        """Seek every assigned partition to the group's committed offset on the broker (its
        beginning when the broker has none). False while the broker cannot answer."""
        from confluent_kafka import OFFSET_BEGINNING, KafkaException

        assigned = self.consumer.assignment()
        if not assigned:
            self._reposition = False
            return True
        try:
            committed = self.consumer.committed(assigned, timeout=self._reposition_timeout_s)
        except KafkaException as exc:
            log.debug("committed offsets not readable yet: %s", exc)
            return False
        for tp in committed:
            if tp.error is not None:  # e.g. the topic is not there yet: keep the position
                log.warning("no committed offset for %s[%d]: %s", tp.topic, tp.partition, tp.error)
                continue
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self.seek(tp.topic, tp.partition, offset)
        self._reposition = False
        log.info(
            "brokers back: resuming %s from the committed offsets",
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in committed),
        )
        return True

    def assignment(self) -> list[Partition]:
        return sorted((p.topic, p.partition) for p in self.consumer.assignment())

    def partition_count(self, topic: str) -> int | None:
        """Partitions of ``topic`` from the cluster metadata (None when unknown)."""
        try:
            metadata = self.producer.list_topics(topic, timeout=self.delivery_timeout_s)
        except Exception as exc:  # noqa: BLE001 - KafkaException and timeouts alike
            log.warning("no metadata for topic %r: %s", topic, exc)
            return None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        return len(found.partitions)

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

        try:
            [tp] = self.consumer.position([TopicPartition(topic, partition)])
        except Exception:  # noqa: BLE001 - not assigned (any more), or the client is closing
            return None
        return int(tp.offset) if tp.offset >= 0 else None

    # ------------------------------------------------------------------ producing

    def publish(self, records: Sequence[OutRecord], stop: threading.Event) -> list[Refused]:
        """Produce every record; return when the broker acknowledged each one (retried as
        :func:`worker.transport.publish_until_acknowledged` says), with the records refused for
        good (``MSG_SIZE_TOO_LARGE`` and the like, from ``produce`` or the broker), which are
        not retried. Failed records are produced again (at-least-once)."""
        return self.settle(self.send(records), stop)

    def send(self, records: Sequence[OutRecord]) -> _Ticket:
        """Produce every record, not waiting: each one's delivery report counts the returned
        ticket down (reports are served by ``poll``/``flush``, on this thread)."""
        from confluent_kafka import KafkaException

        if self._producer_stale:
            self._producer_stale = False
            self._renew_producer()
        producer = self.producer
        ticket = _Ticket(records, producer)
        report = ticket.report
        produce = producer.produce
        for index, record in enumerate(records):
            partition = record.partition
            while True:
                ticket.left += 1
                try:
                    produce(
                        record.topic,
                        value=record.value,
                        key=record.key,
                        headers=record.headers,
                        partition=-1 if partition is None else partition,
                        on_delivery=report,
                    )
                    break
                except BufferError:  # local queue full: serve delivery reports, retry
                    ticket.left -= 1
                    producer.poll(0.05)
                except KafkaException as exc:  # e.g. the producer went fatal
                    ticket.left -= 1
                    if _refused_for_good(exc.args[0] if exc.args else None):
                        ticket.refused.append(Refused(record, str(exc)))  # too large to send
                        break
                    ticket.unsent = list(records[index:])
                    ticket.error = exc
                    return ticket
        return ticket

    def settle(self, sending: Sending, stop: threading.Event) -> list[Refused]:
        """Wait for the delivery reports of a batch :meth:`send` produced, retried as
        :meth:`publish`; returns the records refused for good (see
        :func:`worker.transport.settle_until_acknowledged`)."""
        assert isinstance(sending, _Ticket), "a batch sent by another transport"
        return settle_until_acknowledged(
            sending,
            send=self.send,
            outcome=self._outcome,
            flush=lambda: self.producer.flush(self.delivery_timeout_s),
            renew_producer=self._renew_producer,
            backoff=self.backoff,
            stop=stop,
        )

    def _outcome(
        self, ticket: _Ticket, refused: list[Refused], strikes: Strikes
    ) -> tuple[list[OutRecord], Any]:
        """Wait (up to the delivery timeout) for every report of ``ticket``: ``(the records
        not written, the first error)``; those refused for good (:func:`_refused_for_good`,
        or out of ``strikes``) go to ``refused``. Only this batch is waited for (a ``flush``
        would wait for the next batch too, in flight)."""
        producer = ticket.producer
        deadline = time.monotonic() + self.delivery_timeout_s
        while ticket.left > 0:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                break
            producer.poll(min(left_s, 0.1))
        if ticket.left > 0:
            # Still queued after the delivery timeout: purge the producer's queue, which
            # reports each record as failed, so they are produced again (duplicates possible,
            # losses not; a later batch's purged records are retried when it is settled).
            producer.purge(in_queue=True, in_flight=True)
            producer.flush(0)
        failed: list[OutRecord] = list(ticket.unsent)
        reason: Any = ticket.error
        if ticket.left > 0:  # reports that never came: send the whole batch again
            return list(ticket.records), reason or "no delivery report before the timeout"
        retry: list[tuple[OutRecord, Any]] = []
        for error, record in _originals(ticket.failed, ticket.records):
            if _refused_for_good(error):
                refused.append(Refused(record, str(error)))
                continue
            retry.append((record, error))
            if reason is None:
                reason = error
        acknowledged = len(ticket.failed) < len(ticket.records) - len(ticket.refused) - len(
            ticket.unsent
        )
        failed += strikes.judge(
            retry, acknowledged=acknowledged, answered=_answered, refused=refused
        )
        return failed, reason

    def _renew_producer(self) -> None:
        """A fresh producer after failed deliveries: an idempotent producer whose broker lost
        its state (a restart of a memory-only broker, a failover) goes fatal
        (UNKNOWN_PRODUCER_ID) and refuses every record; a new one starts a new session."""
        old = self.producer
        try:
            old.purge(in_queue=True, in_flight=True)
            old.flush(0)
        except Exception:  # the old producer is being discarded anyway
            log.debug("discarding the failed producer raised", exc_info=True)
        self.producer = self._new_producer()

    def _new_producer(self) -> Any:
        """A producer; a transactional one has called ``init_transactions``, which fences an
        earlier producer with the same transactional id and aborts what it left open."""
        producer = self._producer_class(self._producer_settings)
        if self.exactly_once:
            producer.init_transactions(self._txn_timeout_s)
        return producer

    # ------------------------------------------------------------------ exactly-once

    def publish_transaction(
        self, records: Sequence[OutRecord], offsets: dict[Partition, int], stop: threading.Event
    ) -> bool:
        """Publish ``records`` and commit ``offsets`` in one transaction (see
        :meth:`worker.kafka_io.KafkaPythonTransport.publish_transaction`)."""
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        payload = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        moved_on_codes = (
            KafkaError.REBALANCE_IN_PROGRESS,
            KafkaError.ILLEGAL_GENERATION,
            KafkaError.UNKNOWN_MEMBER_ID,
            KafkaError.FENCED_INSTANCE_ID,
        )

        strikes = Strikes()  # across the attempts of this transaction

        def attempt(alone: Alone) -> None:
            producer = self.producer
            if self._abort_pending:  # librdkafka: a timed-out abort is resumed by calling again
                producer.abort_transaction(self._txn_timeout_s)
                self._abort_pending = False
            producer.begin_transaction()
            ticket = _Ticket(records, producer)
            report = ticket.report
            refused: list[Refused] = []
            produce = producer.produce
            for r in records:
                single = bool(alone) and record_identity(r) in alone
                if single:  # in a message set of its own: flushed before and after
                    producer.flush(self.delivery_timeout_s)
                while True:
                    try:
                        produce(
                            r.topic,
                            value=r.value,
                            key=r.key,
                            headers=r.headers,
                            partition=-1 if r.partition is None else r.partition,
                            on_delivery=report,
                        )
                        break
                    except BufferError:  # local queue full: serve delivery reports, retry
                        producer.poll(0.05)
                    except KafkaException as exc:
                        if not _refused_for_good(exc.args[0] if exc.args else None):
                            raise
                        refused.append(Refused(r, str(exc)))  # too large to send
                        break
                if single:
                    producer.flush(self.delivery_timeout_s)
            # Delivery reports now (commit_transaction would flush anyway): a record the
            # broker refused for good makes the transaction abortable, and retrying it as is
            # would be refused forever.
            producer.flush(self.delivery_timeout_s)
            failed = _originals(ticket.failed, records)
            refused += [Refused(rec, str(err)) for err, rec in failed if _refused_for_good(err)]
            strikes.judge(
                [(rec, err) for err, rec in failed if not _refused_for_good(err)],
                acknowledged=len(failed) < len(records) - len(refused),
                answered=_answered,
                refused=refused,
            )
            if refused:
                raise TransactionRefused(refused)
            if self._broken is not None:
                raise self._broken_error()
            metadata = self.consumer.consumer_group_metadata()
            timeout_s = self._txn_timeout_s
            self._bounded(
                "send_offsets_to_transaction",
                lambda: producer.send_offsets_to_transaction(payload, metadata, timeout_s),
                timeout_s,
            )
            self._bounded(
                "commit_transaction", lambda: producer.commit_transaction(timeout_s), timeout_s
            )

        def moved_on(exc: BaseException) -> bool:
            error = exc.args[0] if exc.args else None
            return error is not None and error.code() in moved_on_codes

        return transact_until_done(
            attempt,
            self._abort_or_renew,
            transient=(KafkaException,),
            moved_on=moved_on,
            backoff=self.backoff,
            stop=stop,
            size=len(records),
        )

    def _bounded(self, name: str, call: Callable[[], T], timeout_s: float) -> T:
        """``call()`` on the helper thread; :class:`ClientsBroken` when it is still running
        ``_DEADLINE_MARGIN_S`` after its own ``timeout_s`` (the producer is then abandoned)."""
        if self._calls is None:
            self._calls = _CallThread()
        future = self._calls.submit(call)
        try:
            return future.result(timeout_s + _DEADLINE_MARGIN_S)
        except FutureTimeout:
            _ABANDONED.append(self.producer)  # its thread ends if the call ever returns
            self._broken = (
                f"{name} still blocked {timeout_s + _DEADLINE_MARGIN_S:.0f}s after it was "
                f"called with a {timeout_s:.0f}s timeout (librdkafka #5456)"
            )
            raise ClientsBroken(self._broken) from None

    def _abort_or_renew(self) -> None:
        """Abort the open transaction; a producer that cannot (fenced, fatal) is replaced."""
        from confluent_kafka import KafkaException

        try:
            self.producer.abort_transaction(self._txn_timeout_s)
            self._abort_pending = False
            return
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if error is not None and error.retriable() and not error.fatal():
                # The broker is away: the abort goes on inside librdkafka and must be resumed
                # (called again) before the next transaction; a new producer would conflict.
                self._abort_pending = True
                log.warning("abort_transaction not finished yet (%s); resumed next attempt", exc)
                return
            log.debug("abort_transaction failed; renewing the producer", exc_info=True)
        except Exception:
            log.debug("abort_transaction failed; renewing the producer", exc_info=True)
        self._abort_pending = False
        try:
            self._renew_producer()
        except Exception as exc:  # noqa: BLE001 - broker away: the next attempt retries
            log.warning("could not renew the transactional producer yet: %s", exc)

    # ------------------------------------------------------------------ committing

    def commit(self, offsets: dict[Partition, int], stop: threading.Event) -> bool:
        """Commit ``partition → next offset``. False if the group moved on (a rebalance)."""
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        payload = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        rebalanced = (
            KafkaError.REBALANCE_IN_PROGRESS,
            KafkaError.ILLEGAL_GENERATION,
            KafkaError.UNKNOWN_MEMBER_ID,
            KafkaError._NO_OFFSET,  # noqa: SLF001 - librdkafka's public constant name
        )

        def refused(exc: BaseException) -> bool:
            error = exc.args[0] if exc.args else None
            return error is not None and error.code() in rebalanced

        def attempt() -> None:
            try:
                self.consumer.commit(offsets=payload, asynchronous=False)
            except KafkaException:
                if self._broken is not None:  # a fatal consumer: retrying cannot help
                    raise self._broken_error() from None
                raise

        return commit_until_done(
            attempt,
            transient=(KafkaException,),
            refused=refused,
            backoff=self.backoff,
            stop=stop,
        )

    def close(self) -> None:
        if self._calls is not None:
            self._calls.shutdown()
        if self._broken is not None:
            # A stuck producer is left to its thread; the consumer is closed without waiting
            # on it (closing a fatal consumer can block on the coordinator that fenced it).
            closer = threading.Thread(target=self.consumer.close, daemon=True)
            closer.start()
            closer.join(self._reposition_timeout_s)
            return
        try:
            self.producer.flush(5)
        finally:
            self.consumer.close()


def _is_fatal(error: Any) -> bool:
    """A fatal client error; a consumed message's error carries code ``_FATAL`` without the
    fatal flag."""
    from confluent_kafka import KafkaError

    return bool(error.fatal()) or error.code() == KafkaError._FATAL  # noqa: SLF001


def _is_fence(error: Any) -> bool:
    """A fatal error that is the coordinator fencing this static member (librdkafka reports
    FENCED_INSTANCE_ID inside its generic fatal error, so the text is checked too)."""
    from confluent_kafka import KafkaError

    code = getattr(KafkaError, "FENCED_INSTANCE_ID", None)
    text = error.str().lower()
    return error.code() == code or "group.instance.id" in text or "fenced_instance_id" in text
