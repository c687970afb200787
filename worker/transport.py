"""What the scoring loop needs of a Kafka client pair, and the retry rules both clients share.

The loop talks to a :class:`Transport`; :func:`make_transport` builds the one chosen by
``[kafka] transport``: :class:`worker.kafka_io.KafkaPythonTransport` or
:class:`worker.confluent_io.ConfluentTransport`. Each client module keeps only what differs
between the clients (their calls, their error codes, how a producer is replaced); how long to
wait between attempts, when to give up and what is logged live here, once:

- :func:`publish_until_acknowledged`: send, wait for every acknowledgement, send the failed
  records again on a new producer after a backoff, for as long as the broker is away; at
  shutdown raise :class:`DeliveryFailed` so their offsets are not committed. A record refused
  for good is not retried: each client's round sets it aside and ``publish`` returns it
  (:class:`Refused`). Refused for good is (1) an error the broker returned that is not
  transient: any broker error code outside the client's transient ones (not-leader, timeouts,
  not-enough-replicas and the like), except the producer-session errors that a new producer
  clears (out-of-order sequence, unknown producer id, fenced epoch); and (2) a record that
  failed in :data:`PUBLISH_ROUNDS` rounds while the broker was answering (:class:`Strikes`).
  An outage, where nothing is answered, is waited out however long it lasts, as before.
  Sending is split in two for the pipelined loop: ``send`` hands a batch to the producer and
  returns at once (a :class:`Sending`), ``settle`` waits for that batch's acknowledgements
  (the first round) and retries as above (:func:`settle_until_acknowledged`, which also sends
  the records refused together again alone); ``publish`` is the two in a row;
- :func:`commit_until_done`: commit, retry transient failures after a backoff, give up when the
  group rebalanced (the new owner resumes from the last commit) or at shutdown;
- :class:`ClientsBroken`: raised by a transport whose clients cannot go on; the loop replaces
  the pair (nothing a broken pair held is committed, so nothing is lost).

Every wait is stop-aware: ``stop()`` never waits out a backoff. Neither client library is
imported here: a confluent-kafka worker does not load kafka-python.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from streamscore.exceptions import StreamscoreError
from streamscore.wire import OutRecord

if TYPE_CHECKING:
    from streamscore.config import Config, WorkerConfig
    from worker.membership import Membership

log = logging.getLogger(__name__)

#: ``(topic, partition number)``.
Partition = tuple[str, int]

#: ``commit(offsets)``: commit ``partition -> next offset`` (False: refused).
CommitOffsets = Callable[[dict[Partition, int]], bool]


class RevokeWork(Protocol):
    """What a revoke must finish before its partitions are given up, when its callback runs
    off the scoring thread (kafka-python 3: on the consumer's network thread)."""

    def try_finish(self, commit: CommitOffsets) -> bool:
        """Finish it now, committing with ``commit``; False when the scoring thread is busy
        finishing batches itself (call again shortly, without blocking the network loop)."""
        ...


#: The revoke callback, called before the partitions are given up: None, or the work the
#: transport must get done (:meth:`RevokeWork.try_finish`) before the member rejoins.
OnRevoke = Callable[[list[Partition]], "RevokeWork | None"]


class Transport(Protocol):
    """What the scoring loop needs of a Kafka client pair (kafka-python or confluent-kafka)."""

    def subscribe(
        self,
        topic: str,
        on_assign: Callable[[list[Partition]], None],
        on_revoke: OnRevoke,
    ) -> None: ...

    def assign(self, topic: str, partitions: list[int]) -> None: ...

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]: ...

    def assignment(self) -> list[Partition]: ...

    def partition_count(self, topic: str) -> int | None: ...

    def highwater(self, topic: str, partition: int) -> int | None: ...

    def position(self, topic: str, partition: int) -> int | None: ...

    def seek(self, topic: str, partition: int, offset: int) -> None: ...

    def publish(self, records: Sequence[OutRecord], stop: threading.Event) -> list[Refused]: ...

    def send(self, records: Sequence[OutRecord]) -> Sending: ...

    def settle(self, sending: Sending, stop: threading.Event) -> list[Refused]: ...

    def commit(self, offsets: dict[Partition, int], stop: threading.Event) -> bool: ...

    def publish_transaction(
        self, records: Sequence[OutRecord], offsets: dict[Partition, int], stop: threading.Event
    ) -> bool: ...

    def close(self) -> None: ...


class Sending(Protocol):
    """A batch of records handed to the producer by ``Transport.send``, not waited for."""

    def acknowledged(self) -> bool:
        """Every record answered by the broker (acknowledged or failed), without waiting."""
        ...


#: A record still failing after this many rounds while the broker answered (an error code
#: from the broker, or other records of the round acknowledged) is refused for good. Each
#: round is the client's own retries for up to ``[worker] delivery_timeout_ms``, then the
#: backoff: at the defaults, a record gives up after 2.5 minutes or more.
PUBLISH_ROUNDS = 5


class Strikes:
    """How many rounds each record failed while the broker was answering, across the rounds
    of one ``settle`` or of one transaction's attempts.

    A round counts against a record that failed when the broker answered for it (its error
    carries a broker error code) or when other records of that round were acknowledged (the
    broker is up: it is this record, or its partition, that it does not take). A round in
    which nothing was acknowledged and nothing answered (the broker away) counts against none,
    so an outage is still waited out however long it lasts. At ``limit`` strikes the record is
    refused for good, with the last error as the reason.
    """

    def __init__(self, limit: int = PUBLISH_ROUNDS) -> None:
        self.limit = limit
        self._counts: dict[tuple[str, bytes | None, bytes | None], int] = {}
        #: Records given up by strikes: not sent alone again to tell them apart (that takes
        #: ``limit`` more rounds each); :func:`refused_alone` is for immediate refusals.
        self.given_up: set[tuple[str, bytes | None, bytes | None]] = set()

    def judge(
        self,
        failed: Sequence[tuple[OutRecord, Any]],
        *,
        acknowledged: bool,
        answered: Callable[[Any], bool],
        refused: list[Refused],
    ) -> list[OutRecord]:
        """``failed`` (record, error) of one round: the records to send again; those out of
        strikes go to ``refused`` instead."""
        again: list[OutRecord] = []
        for record, error in failed:
            if not (acknowledged or answered(error)):
                again.append(record)
                continue
            identity = record_identity(record)
            if identity in self.given_up:  # sent again alone, in a transaction: still failing
                refused.append(Refused(record, f"still not accepted (last error: {error})"))
                continue
            strikes = self._counts.get(identity, 0) + 1
            if strikes < self.limit:
                self._counts[identity] = strikes
                again.append(record)
                continue
            self._counts.pop(identity, None)
            self.given_up.add(identity)
            refused.append(
                Refused(
                    record,
                    f"not accepted in {strikes} rounds while the broker was answering "
                    f"(last error: {error})",
                )
            )
        return again


class Refused(NamedTuple):
    """A record the broker (or the client, before sending) refused for good: too large,
    invalid, any error the broker returned that is not transient, or one that kept failing
    (:class:`Strikes`). Sending it again would fail again; ``publish`` returns it instead of
    retrying, and the worker dead-letters it (stage ``publish``), with ``reason``."""

    record: OutRecord
    reason: str


#: Records to send one per record batch, by :func:`record_identity`.
Alone = frozenset[tuple[str, bytes | None, bytes | None]]


def record_identity(record: OutRecord) -> tuple[str, bytes | None, bytes | None]:
    """What finds a record again in a client's report, which may hold a copy of it."""
    return (record.topic, record.key, record.value)


def refused_alone(
    refused: list[Refused], send_alone: Callable[[OutRecord], list[Refused]]
) -> list[Refused]:
    """The records refused for good, sent one at a time to tell which they are.

    A broker refuses a whole record batch (``max.message.bytes`` is a batch's limit), so a record
    that fits can share the refusal of the one that does not. With one record refused, it was
    alone; with several, each is sent again alone (``send_alone``), and only those refused
    alone are returned.
    """
    if len(refused) < 2:
        return refused
    log.info(
        "%d records refused together; sending each alone to find those too large", len(refused)
    )
    out: list[Refused] = []
    for record, _ in refused:
        out += send_alone(record)
    return out


def transact_refusing_alone(attempt: Callable[[Alone], bool]) -> bool:
    """``attempt(alone)`` (a whole transaction; the records in ``alone`` are sent one per batch)
    until it commits or returns False. A transaction refused with several records is built
    again with those records alone (see :func:`refused_alone`); one refused alone raises
    :class:`TransactionRefused` for the caller to replace."""
    alone: Alone = frozenset()
    while True:
        try:
            return attempt(alone)
        except TransactionRefused as exc:
            suspects = {record_identity(r.record) for r in exc.refused} - alone
            if len(exc.refused) < 2 or not suspects:
                raise
            log.info(
                "%d records of a transaction refused together; sending each alone to find "
                "those too large",
                len(exc.refused),
            )
            alone |= suspects


class TransactionRefused(StreamscoreError):
    """The broker (or the client) refused records of a transaction for good (too large): the
    transaction was aborted, so nothing of it is visible. Sending them again would be refused
    again; the caller builds the transaction again with their dead letters in their place
    (:func:`worker.commit.publish_in_transaction`)."""

    def __init__(self, refused: list[Refused]) -> None:
        first = refused[0]
        super().__init__(
            f"{len(refused)} record(s) of the transaction refused for good, e.g. "
            f"{first.record.topic}: {first.reason}"
        )
        self.refused = refused


class DeliveryFailed(StreamscoreError):
    """Outputs could not be acknowledged before shutdown; their offsets are not committed."""


class ClientsBroken(StreamscoreError):
    """The client pair cannot go on (a consumer that went fatal, a client call that ignored its
    timeout): the loop ends this membership, uncommitted, and starts one on new clients, which
    resume from the group's commits (and, under exactly-once, fence the old producer)."""


class InstanceFenced(ClientsBroken):
    """The group coordinator fenced this static member: a consumer with the same
    ``group.instance.id`` joined after it. Once after a broker restart that can be this member's
    own rejoin (librdkafka); again and again it is another process using the same name
    (:class:`worker.membership.FenceWatch` tells the two apart)."""


def make_transport(
    cfg: Config, *, client_id: str, membership: Membership | None = None
) -> Transport:
    """The Kafka client pair chosen by ``[kafka] transport`` (only its library is imported)."""
    if cfg.kafka.transport == "confluent-kafka":
        from worker.confluent_io import ConfluentTransport

        return ConfluentTransport(cfg, client_id=client_id, membership=membership)
    from worker.kafka_io import KafkaPythonTransport

    return KafkaPythonTransport(cfg, client_id=client_id, membership=membership)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between attempts: ``first_s``, doubling, at most ``max_s``."""

    first_s: float
    max_s: float

    @classmethod
    def from_config(cls, worker: WorkerConfig) -> Backoff:
        return cls(worker.retry_backoff_ms / 1000, worker.max_retry_backoff_ms / 1000)

    def delays_s(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


#: One round of sending: ``pending`` in, ``(failed records, first failure reason)`` out.
SendRound = Callable[[list[OutRecord]], tuple[list[OutRecord], Any]]


def publish_until_acknowledged(
    records: Sequence[OutRecord],
    send_round: SendRound,
    renew_producer: Callable[[], None],
    backoff: Backoff,
    stop: threading.Event,
    first_round: Callable[[], tuple[list[OutRecord], Any]] | None = None,
) -> None:
    """Send ``records`` until the broker acknowledged each one.

    ``first_round`` (when given) is the outcome of the first round, ``records`` already sent
    (``Transport.send``): it waits for their acknowledgements instead of sending them again.
    After a round with failures: raise :class:`DeliveryFailed` if ``stop`` is set (the caller
    then does not commit their offsets), else wait the backoff (or until ``stop``), replace the
    producer (one that lost its broker may refuse every record from then on) and send the
    failed ones again.
    """
    pending = list(records)
    for delay_s in backoff.delays_s():
        if first_round is not None:
            failed, reason = first_round()
            first_round = None
        else:
            failed, reason = send_round(pending)
        if not failed:
            return
        if stop.is_set():
            raise DeliveryFailed(
                f"{len(failed)} of {len(records)} records unacknowledged at shutdown: {reason}"
            )
        log.warning(
            "%d of %d records not acknowledged (%s); retrying in %.1fs",
            len(failed),
            len(records),
            reason,
            delay_s,
        )
        stop.wait(delay_s)
        renew_producer()
        pending = failed


class SentBatch(Protocol):
    """What :func:`settle_until_acknowledged` reads of a client's sent batch: its records and
    those the client refused for good before sending them (too large)."""

    @property
    def records(self) -> Sequence[OutRecord]: ...

    @property
    def refused(self) -> list[Refused]: ...


_Batch = TypeVar("_Batch", bound=SentBatch)


def settle_until_acknowledged(
    sending: _Batch,
    *,
    send: Callable[[Sequence[OutRecord]], _Batch],
    outcome: Callable[[_Batch, list[Refused], Strikes], tuple[list[OutRecord], Any]],
    flush: Callable[[], None],
    renew_producer: Callable[[], None],
    backoff: Backoff,
    stop: threading.Event,
) -> list[Refused]:
    """Wait until the broker acknowledged every record of ``sending`` (a batch ``send`` handed
    to the producer), sending the failed ones again as :func:`publish_until_acknowledged`
    says; returns the records refused for good.

    What differs between the clients is passed in: ``send(records)`` hands records to the
    producer, not waiting; ``outcome(batch, refused, strikes)`` waits for one batch's
    acknowledgements, appends the records the broker refused for good to ``refused`` (those
    out of ``strikes`` too, :meth:`Strikes.judge`) and returns ``(the records without an ack,
    the first error)``; ``flush()`` waits for all the producer holds. Records refused together
    are sent again one at a time (:func:`refused_alone`), each in a batch of its own: what the
    producer holds (the next batch in flight included) is flushed before and after it, so
    nothing shares its batch. Records given up by strikes are not: it would take them as many
    rounds again, each.
    """
    refused = list(sending.refused)
    strikes = Strikes()

    def send_round(pending: list[OutRecord]) -> tuple[list[OutRecord], Any]:
        batch = send(pending)
        refused.extend(batch.refused)
        return outcome(batch, refused, strikes)

    publish_until_acknowledged(
        sending.records,
        send_round,
        renew_producer,
        backoff,
        stop,
        first_round=lambda: outcome(sending, refused, strikes),
    )

    def send_alone(record: OutRecord) -> list[Refused]:
        flush()
        batch = send([record])
        flush()
        return settle_until_acknowledged(
            batch,
            send=send,
            outcome=outcome,
            flush=flush,
            renew_producer=renew_producer,
            backoff=backoff,
            stop=stop,
        )

    struck = [r for r in refused if record_identity(r.record) in strikes.given_up]
    if not struck:
        return refused_alone(refused, send_alone)
    rest = [r for r in refused if record_identity(r.record) not in strikes.given_up]
    return struck + refused_alone(rest, send_alone)


def transact_until_done(
    attempt: Callable[[Alone], None],
    abort: Callable[[], None],
    *,
    transient: tuple[type[BaseException], ...],
    moved_on: Callable[[BaseException], bool],
    backoff: Backoff,
    stop: threading.Event,
    size: int,
) -> bool:
    """Run ``attempt`` (begin, send, send offsets, commit: one transaction) until it commits.

    On a failure the transaction is aborted (``abort``; nothing of it is visible to
    read_committed readers). False when the group moved on (``moved_on(exc)``: a rebalance, or
    this member was fenced as a zombie): the caller rewinds, the new owner redoes the batch.
    A transient failure is retried after a backoff; at shutdown it raises
    :class:`DeliveryFailed`. Records refused for good abort it too: refused together, the
    transaction is built again with them alone (``attempt(alone)``, see
    :func:`transact_refusing_alone`); one refused alone raises :class:`TransactionRefused`
    (retrying it would loop forever).
    """

    def until_committed(alone: Alone) -> bool:  # one build of the transaction, retried
        for delay_s in backoff.delays_s():
            try:
                attempt(alone)
                return True
            except TransactionRefused:  # not transient: the caller replaces the refused records
                abort()
                raise
            except transient as exc:
                abort()
                if moved_on(exc):
                    log.warning(
                        "transaction aborted, the group moved on (%s); the new owner scores these "
                        "events, nothing of them is visible to read_committed readers",
                        exc,
                    )
                    return False
                if stop.is_set():
                    raise DeliveryFailed(
                        f"transaction of {size} records not committed at shutdown: {exc}"
                    ) from exc
                log.warning("transaction failed (%s); retrying in %.1fs", exc, delay_s)
                stop.wait(delay_s)
        raise AssertionError("unreachable: the backoff never ends")  # pragma: no cover

    return transact_refusing_alone(until_committed)


def commit_until_done(
    attempt: Callable[[], None],
    *,
    transient: tuple[type[BaseException], ...],
    refused: Callable[[BaseException], bool],
    backoff: Backoff,
    stop: threading.Event,
) -> bool:
    """Run ``attempt`` (one synchronous commit) until it succeeds: True.

    False when the group rebalanced first (``refused(exc)``: the new owner gets these events
    again, at-least-once) or when a ``transient`` failure happens at shutdown.
    """
    for delay_s in backoff.delays_s():
        try:
            attempt()
            return True
        except transient as exc:
            if refused(exc):
                log.warning(
                    "commit refused, the group rebalanced first (%s); these events will be "
                    "delivered again to the new owner (at-least-once)",
                    exc,
                )
                return False
            if stop.is_set():
                log.error("commit failed at shutdown: %s", exc)
                return False
            log.warning("commit failed (%s); retrying in %.1fs", exc, delay_s)
            stop.wait(delay_s)
    raise AssertionError("unreachable: the backoff never ends")  # pragma: no cover
