"""Where a batch is formed: gathering, what a rebalance drops, the rewind, the offsets to commit.

:class:`Batcher` is one scoring thread's batch being gathered. Its state machine:

- :meth:`Batcher.gather` polls until the batch is full, drained or the wait is over and
  returns it (the batcher is empty again);
- :meth:`Batcher.revoke` and :meth:`Batcher.assign` are called by the rebalance callbacks
  (on any thread: kafka-python 3 runs them on its network thread, confluent-kafka inside
  ``poll``). They only append the event to a queue under a lock (a revoke first lets
  ``before_revoke`` finish the batches in flight: :mod:`worker.pipeline`; what it returns,
  work left for the callback's transport or None, is the callback's). Everything the rebalance
  changes (the batch being gathered, the rewind map, the partitions owned, what the worker
  reports through ``on_change``) is changed by the scoring thread, which drains the queue
  right after each poll, applying the events in the order they arrived;
- a revoke drops the records of its partitions gathered so far, including those of the poll
  during which it arrived (they may predate the rebalance): none of them was scored or
  published, so their new owner scores them from the committed offset. Until the next
  assignment, records of a revoked partition that a poll still returns are dropped too;
- a dropped partition this member gets back (an eager rebalance revokes all, then assigns) is
  rewound to its first dropped offset when its assignment is applied, whatever position the
  client kept: nothing dropped is skipped, and records polled twice are not kept twice. A
  rewind for a partition the assignment does not include is forgotten (its new owner resumes
  from the committed offset).

With no rebalance event queued, a poll costs one unlocked emptiness check beyond gathering.
:func:`next_offsets` gives the offsets to commit once a batch's outputs are acknowledged
(:mod:`worker.commit`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streamscore.config import WorkerConfig
from worker.transport import Partition, RevokeWork, Transport

log = logging.getLogger(__name__)

#: ``on_change(owned, joined)``: called on the scoring thread after it applied rebalance
#: events; ``owned`` is what this member owns now, ``joined`` False while a revoke awaits
#: its assignment.
OwnershipChanged = Callable[[list[Partition], bool], None]


@dataclass(frozen=True)
class BatchLimits:
    """When a batch is complete (see ``[worker]`` in config.toml)."""

    max_batch_records: int
    max_wait_ms: int
    batch_linger_ms: int = 0
    idle_after_ms: int = 0  # 0: never idle
    idle_wait_ms: int = 500

    @classmethod
    def from_config(cls, worker: WorkerConfig) -> BatchLimits:
        return cls(
            worker.max_batch_records,
            worker.max_wait_ms,
            worker.batch_linger_ms,
            worker.idle_after_ms,
            worker.idle_wait_ms,
        )


@dataclass(frozen=True, slots=True)
class RebalanceEvent:
    """One rebalance callback, as queued for the scoring thread."""

    assigned: bool  # False: revoked (or lost)
    partitions: frozenset[Partition]


class Batcher:
    """The batch being gathered by one scoring thread (see the module docstring)."""

    def __init__(
        self,
        limits: BatchLimits,
        stop: threading.Event,
        on_change: OwnershipChanged | None = None,
        *,
        before_revoke: Callable[[list[Partition]], RevokeWork | None] | None = None,
    ) -> None:
        self.limits = limits
        self._stop = stop
        self._on_change = on_change
        self._before_revoke = before_revoke
        self._batch: list[Any] = []
        self._events: list[RebalanceEvent] = []
        self._events_lock = threading.Lock()
        # Touched by the scoring thread only:
        self._owned: set[Partition] = set()
        #: Partitions to seek back before the next poll (an aborted transaction's batch).
        self._resume: dict[Partition, int] = {}
        self._blocked: set[Partition] = set()  # revoked, no assignment applied since
        self._rewind: dict[Partition, int] = {}
        #: When the last events arrived: after ``idle_after_ms`` without, polls wait longer.
        self._last_events_at = time.monotonic()

    # ------------------------------------------------------------------ any thread

    def revoke(self, partitions: Iterable[Partition]) -> RevokeWork | None:
        """Partitions leave this member (any thread): queued for the scoring thread, after
        ``before_revoke`` (the work it returns, if any, is left to the callback)."""
        gone = sorted(partitions)
        waiting = self._before_revoke(gone) if self._before_revoke is not None else None
        self._queue(RebalanceEvent(False, frozenset(gone)))
        return waiting

    def assign(self, partitions: Iterable[Partition]) -> None:
        """Partitions are (again) this member's (any thread): queued for the scoring thread."""
        self._queue(RebalanceEvent(True, frozenset(partitions)))

    def _queue(self, event: RebalanceEvent) -> None:
        with self._events_lock:
            self._events.append(event)

    # ------------------------------------------------------------------ scoring thread

    @property
    def owned(self) -> list[Partition]:
        """The partitions this member owns as far as the applied events say."""
        return sorted(self._owned)

    def reset(self) -> None:
        """A new group membership starts (a new consumer): forget the previous one's state,
        including events its consumer queued while closing."""
        with self._events_lock:
            self._events = []
        self._batch = []
        self._owned = set()
        self._blocked = set()
        self._rewind = {}
        self._resume = {}

    def take(self) -> list[Any]:
        """What was gathered and not yet returned (at shutdown); the batcher is empty after."""
        if self._events or self._blocked:
            self._apply_events(None, [])
        batch, self._batch = self._batch, []
        return batch

    def gather(self, transport: Transport, max_records: int | None = None) -> list[Any]:
        """Poll a batch: wait up to ``max_wait_ms`` for the first events, then take what the
        client has buffered, and stop at ``max_batch_records`` (or ``max_records``, when lower:
        the pacer's cap for a slow model) or when nothing more is there (or after
        ``batch_linger_ms``, when set). A busy worker gets full batches because events pile up
        while it scores; a quiet one scores each arrival at once."""
        limits = self.limits
        max_records = min(max_records or limits.max_batch_records, limits.max_batch_records)
        linger_s = limits.batch_linger_ms / 1000
        started = time.monotonic()
        first_at = 0.0
        wait_s = limits.max_wait_ms / 1000
        if self.idle(started):  # nothing for a while: wait longer, spin less
            wait_s = max(wait_s, limits.idle_wait_ms / 1000)
        stop = self._stop
        if self._resume:
            self._seek_back(transport)
        while not stop.is_set():
            now = time.monotonic()
            if self._batch:
                timeout_ms = int((first_at + linger_s - now) * 1000)
            else:
                timeout_ms = int((started + wait_s - now) * 1000)
            polled = transport.poll(max(timeout_ms, 0), max_records - len(self._batch))
            had = bool(self._batch)
            rebalanced = bool(self._events)
            if rebalanced or self._blocked:  # a rebalance: rare, the only locked path
                self._apply_events(transport, polled)
            else:
                self._batch.extend(polled)
            if self._batch and not had:
                first_at = time.monotonic()
            if len(self._batch) >= max_records:
                break
            if self._batch:
                drained = not polled if linger_s == 0 else timeout_ms <= 0
                if drained:
                    break
            elif timeout_ms <= 0 and not (polled and rebalanced):
                break  # (what a rebalance dropped of this poll is polled again first)
        batch, self._batch = self._batch, []
        if batch:
            self._last_events_at = time.monotonic()
        return batch

    def idle(self, now: float | None = None) -> bool:
        """No events for ``idle_after_ms`` (never when that is 0)."""
        after_ms = self.limits.idle_after_ms
        if after_ms <= 0:
            return False
        return ((now or time.monotonic()) - self._last_events_at) * 1000 >= after_ms

    def _apply_events(self, transport: Transport | None, polled: list[Any]) -> None:
        """Apply the queued rebalance events, in order, to the batch plus ``polled``."""
        with self._events_lock:
            events, self._events = self._events, []
        revoked: set[Partition] = set()
        assigned: set[Partition] = set()
        for event in events:
            if event.assigned:
                self._owned |= event.partitions
                assigned |= event.partitions
                self._blocked.clear()
            else:
                self._owned -= event.partitions
                assigned -= event.partitions
                revoked |= event.partitions
                self._blocked |= event.partitions
        self._batch.extend(polled)
        self._drop(revoked | self._blocked)
        if events and events[-1].assigned:  # a revoke alone waits for its assignment
            self._apply_rewind(transport, assigned)
        if events and self._on_change is not None:
            self._on_change(sorted(self._owned), events[-1].assigned)

    def _drop(self, partitions: set[Partition]) -> None:
        """Drop the gathered records of ``partitions``, noting where each one must resume."""
        if not partitions or not self._batch:
            return
        kept = []
        rewind = self._rewind
        for r in self._batch:
            key = (r.topic, r.partition)
            if key not in partitions:
                kept.append(r)
            elif r.offset < rewind.get(key, r.offset + 1):
                rewind[key] = r.offset
        dropped = len(self._batch) - len(kept)
        if dropped:
            log.info(
                "partitions revoked: %d polled, unscored events left to their new owner", dropped
            )
        self._batch = kept

    def rewind_to(self, records: Sequence[Any]) -> None:
        """Resume each partition of ``records`` at its first one before the next poll (an
        aborted transaction: none of them is visible, so the member scores them again if it
        still owns the partition; a new owner starts from the committed offset, the same)."""
        resume = self._resume
        for record in records:
            key = (record.topic, record.partition)
            if record.offset < resume.get(key, record.offset + 1):
                resume[key] = record.offset

    def _seek_back(self, transport: Transport) -> None:
        if self._events:  # a rebalance first: seek only what this member still owns
            self._apply_events(transport, [])
        resume, self._resume = self._resume, {}
        for (topic, partition), offset in resume.items():
            if (topic, partition) in self._owned:
                transport.seek(topic, partition, offset)

    def _apply_rewind(self, transport: Transport | None, assigned: set[Partition]) -> None:
        """Partitions assigned back resume at the first event this member dropped of them (the
        committed offset): nothing dropped is skipped, nothing polled twice stays. Rewinds of
        partitions the assignment left out are forgotten: their owner uses the commit."""
        rewind, self._rewind = self._rewind, {}
        for (topic, partition), offset in rewind.items():
            if (topic, partition) not in assigned:
                continue  # another member owns it now and starts from the committed offset
            self._batch = [
                r
                for r in self._batch
                if (r.topic, r.partition) != (topic, partition) or r.offset < offset
            ]
            if transport is not None:
                transport.seek(topic, partition, offset)


def next_offsets(records: Sequence[Any]) -> dict[Partition, int]:
    """``partition -> offset after its last record``: what to commit once ``records`` are done."""
    offsets: dict[Partition, int] = {}
    for record in records:
        key = (record.topic, record.partition)
        if record.offset >= offsets.get(key, -1):
            offsets[key] = record.offset + 1
    return offsets
