"""An in-memory Kafka client pair for unit tests of the worker loop (no broker, no threads).

:class:`FakeTransport` implements :class:`worker.transport.Transport` over a few in-memory
partition logs: ``poll`` hands out records from each assigned partition's position, ``commit``
stores offsets, ``publish`` (or ``send`` then ``settle``) keeps what was published, and
``history`` lists the calls in order. A rebalance is scripted with
:meth:`FakeTransport.rebalance_on_next_poll` and runs inside the next ``poll``, as it does in a
real consumer: the revoke callback first, then positions reset to the committed offsets, then
the assign callback. Integration tests use the real broker instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamscore.wire import OutRecord
from worker.sizes import record_size
from worker.transport import Partition, Refused, TransactionRefused


@dataclass(frozen=True, slots=True)
class FakeRecord:
    """A consumed record in the shape the processor reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class FakeSending:
    """A batch handed to :meth:`FakeTransport.send`; written when it is settled."""

    records: list[OutRecord]
    transport: FakeTransport

    def acknowledged(self) -> bool:
        return self.transport.acks_at_once


class FakeTransport:
    """``logs`` maps each partition to the values written to it, oldest first."""

    def __init__(
        self,
        logs: dict[Partition, Sequence[bytes | None]],
        *,
        on_empty: Callable[[], None] | None = None,
    ) -> None:
        self.logs: dict[Partition, list[FakeRecord]] = {
            (topic, partition): [
                FakeRecord(topic, partition, offset, 1_700_000_000_000 + offset, None, value)
                for offset, value in enumerate(values)
            ]
            for (topic, partition), values in logs.items()
        }
        self.on_empty = on_empty
        self.assigned: list[Partition] = []
        self.positions: dict[Partition, int] = {}
        self.committed: dict[Partition, int] = {}
        self.published: list[OutRecord] = []
        self.commits: list[dict[Partition, int]] = []
        self.seeks: list[tuple[Partition, int]] = []
        self.polls: list[tuple[int, int]] = []
        #: ``("poll", records) / ("send", n) / ("settle", n) / ("commit", offsets)`` in order.
        self.history: list[tuple[str, Any]] = []
        #: False: a sent batch is not acknowledged until it is settled (a slow broker).
        self.acks_at_once = True
        self.closed = False
        #: Refuse records larger than this for good, as a broker with a lower limit does.
        self.refuse_over_bytes: int | None = None
        self.transactions = 0
        self.aborted = 0
        self._on_assign: Callable[[list[Partition]], None] | None = None
        self._on_revoke: Callable[[list[Partition]], None] | None = None
        self._next_assignment: list[Partition] | None = None

    # ------------------------------------------------------------------ scripting

    def rebalance_on_next_poll(self, assignment: list[Partition]) -> None:
        """The group rebalances during the next ``poll``; this member then owns ``assignment``."""
        self._next_assignment = sorted(assignment)

    def append(self, partition: Partition, values: Sequence[bytes | None]) -> None:
        log = self.logs.setdefault(partition, [])
        topic, number = partition
        for value in values:
            offset = len(log)
            log.append(FakeRecord(topic, number, offset, 1_700_000_000_000 + offset, None, value))

    # ------------------------------------------------------------------ Transport

    def subscribe(
        self,
        topic: str,
        on_assign: Callable[[list[Partition]], None],
        on_revoke: Callable[[list[Partition]], None],
    ) -> None:
        self._on_assign, self._on_revoke = on_assign, on_revoke
        self._next_assignment = sorted(p for p in self.logs if p[0] == topic)

    def _rebalance(self) -> None:
        new, self._next_assignment = self._next_assignment, None
        assert new is not None and self._on_assign and self._on_revoke
        if self.assigned:
            self._on_revoke(list(self.assigned))
        self.assigned = new
        self.positions = {p: self.committed.get(p, 0) for p in new}
        self._on_assign(list(new))

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]:
        self.polls.append((timeout_ms, max_records))
        if self._next_assignment is not None:
            self._rebalance()
        out: list[Any] = []
        for partition in self.assigned:
            position = self.positions[partition]
            taken = self.logs[partition][position : position + max_records - len(out)]
            self.positions[partition] = position + len(taken)
            out.extend(taken)
            if len(out) >= max_records:
                break
        self.history.append(("poll", len(out)))
        if not out and self.on_empty is not None:
            self.on_empty()
        return out

    def assignment(self) -> list[Partition]:
        return list(self.assigned)

    def partition_count(self, topic: str) -> int | None:
        return sum(1 for t, _ in self.logs if t == topic) or None

    def highwater(self, topic: str, partition: int) -> int | None:
        return len(self.logs.get((topic, partition), ()))

    def position(self, topic: str, partition: int) -> int | None:
        return self.positions.get((topic, partition))

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self.seeks.append(((topic, partition), offset))
        if (topic, partition) in self.positions:
            self.positions[(topic, partition)] = offset

    def send(self, records: Sequence[OutRecord]) -> FakeSending:
        """Nothing is written yet: :meth:`settle` writes the batch (as its acks arrive)."""
        self.history.append(("send", len(records)))
        return FakeSending(list(records), self)

    def settle(self, sending: Any, stop: threading.Event) -> list[Refused]:
        assert isinstance(sending, FakeSending)
        self.history.append(("settle", len(sending.records)))
        return self.publish(sending.records, stop)

    def publish(self, records: Sequence[OutRecord], stop: threading.Event) -> list[Refused]:
        """Keeps ``records``; those over ``refuse_over_bytes`` (when set) are refused, as a
        broker with that limit would."""
        limit = self.refuse_over_bytes
        if limit is None:
            self.published.extend(records)
            return []
        refused = [Refused(r, "MSG_SIZE_TOO_LARGE") for r in records if record_size(r) > limit]
        self.published.extend(r for r in records if record_size(r) <= limit)
        return refused

    def publish_transaction(
        self, records: Sequence[OutRecord], offsets: dict[Partition, int], stop: threading.Event
    ) -> bool:
        """All of ``records`` and the commit of ``offsets``, or nothing: a record over
        ``refuse_over_bytes`` aborts the transaction (nothing kept), as such a broker does."""
        self.transactions += 1
        limit = self.refuse_over_bytes
        refused = [] if limit is None else [r for r in records if record_size(r) > limit]
        if refused:
            self.aborted += 1
            raise TransactionRefused([Refused(r, "MSG_SIZE_TOO_LARGE") for r in refused])
        self.published.extend(records)
        self.commits.append(dict(offsets))
        self.committed.update(offsets)
        return True

    def commit(self, offsets: dict[Partition, int], stop: threading.Event) -> bool:
        self.history.append(("commit", dict(offsets)))
        self.commits.append(dict(offsets))
        self.committed.update(offsets)
        return True

    def close(self) -> None:
        self.closed = True
