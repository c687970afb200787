"""Where a batch is formed: gathering, what a revoke drops, the rewind, the offsets to commit.

:class:`Batcher` is one scoring thread's batch being gathered. Its state machine:

- :meth:`Batcher.gather` polls until the batch is full, drained or the wait is over and
  returns it (the batcher is empty again);
- :meth:`Batcher.revoke` is called by the rebalance callback with the partitions leaving this
  member. It only records them (under a lock: kafka-python 3 runs the callback on its network
  thread); the scoring thread applies them right after the poll during which they arrived, to
  the records gathered before that poll: those records were neither scored nor published, so
  they are dropped and their new owner scores them from the committed offset;
- a dropped partition this member got back (an eager rebalance revokes all, then assigns) is
  rewound to its first dropped offset, whatever position the client kept: nothing dropped is
  skipped, and records polled twice are not kept twice.

:func:`next_offsets` gives the offsets to commit once a batch's outputs are acknowledged
(:mod:`worker.commit`). Nothing here is per event beyond list filtering on a revoke.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streamscore.config import WorkerConfig
from worker.transport import Partition, Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchLimits:
    """When a batch is complete (see ``[worker]`` in config.toml)."""

    max_batch_records: int
    max_wait_ms: int
    batch_linger_ms: int = 0

    @classmethod
    def from_config(cls, worker: WorkerConfig) -> BatchLimits:
        return cls(worker.max_batch_records, worker.max_wait_ms, worker.batch_linger_ms)


class Batcher:
    """The batch being gathered by one scoring thread (see the module docstring)."""

    def __init__(self, limits: BatchLimits, stop: threading.Event) -> None:
        self.limits = limits
        self._stop = stop
        self._batch: list[Any] = []
        self._rewind: dict[Partition, int] = {}
        self._revoked: set[Partition] = set()
        self._revoked_lock = threading.Lock()

    def revoke(self, partitions: Iterable[Partition]) -> None:
        """Partitions leave this member (any thread): their gathered records will be dropped."""
        with self._revoked_lock:
            self._revoked.update(partitions)

    def take(self) -> list[Any]:
        """What was gathered and not yet returned (at shutdown); the batcher is empty after."""
        self._drop_revoked()
        batch, self._batch = self._batch, []
        return batch

    def gather(self, transport: Transport) -> list[Any]:
        """Poll a batch: wait up to ``max_wait_ms`` for the first events, then take what the
        client has buffered, and stop at ``max_batch_records`` or when nothing more is there
        (or after ``batch_linger_ms``, when set). A busy worker gets full batches because
        events pile up while it scores; a quiet one scores each arrival at once."""
        limits = self.limits
        max_records = limits.max_batch_records
        linger_s = limits.batch_linger_ms / 1000
        started = time.monotonic()
        first_at = 0.0
        stop = self._stop
        while not stop.is_set():
            now = time.monotonic()
            if self._batch:
                timeout_ms = int((first_at + linger_s - now) * 1000)
            else:
                timeout_ms = int((started + limits.max_wait_ms / 1000 - now) * 1000)
            polled = transport.poll(max(timeout_ms, 0), max_records - len(self._batch))
            # A revoke during that poll concerns what was gathered before it: apply it first.
            if self._revoked:
                self._drop_revoked()
            if polled and not self._batch:
                first_at = time.monotonic()
            self._batch.extend(polled)
            if self._rewind:
                self._apply_rewind(transport)
            if len(self._batch) >= max_records:
                break
            if self._batch:
                drained = not polled if linger_s == 0 else timeout_ms <= 0
                if drained:
                    break
            elif timeout_ms <= 0:
                break
        batch, self._batch = self._batch, []
        return batch

    def _drop_revoked(self) -> None:
        with self._revoked_lock:
            revoked, self._revoked = self._revoked, set()
        if not revoked or not self._batch:
            return
        kept = [r for r in self._batch if (r.topic, r.partition) not in revoked]
        for r in self._batch:
            key = (r.topic, r.partition)
            if key in revoked and r.offset < self._rewind.get(key, r.offset + 1):
                self._rewind[key] = r.offset
        dropped = len(self._batch) - len(kept)
        if dropped:
            log.info(
                "partitions revoked: %d polled, unscored events left to their new owner", dropped
            )
        self._batch = kept

    def rewind_to(self, records: Sequence[Any]) -> None:
        """Resume each partition of ``records`` at its first one (an aborted transaction: none
        of them is visible, so the member scores them again if it keeps the partition)."""
        for record in records:
            key = (record.topic, record.partition)
            if record.offset < self._rewind.get(key, record.offset + 1):
                self._rewind[key] = record.offset

    def _apply_rewind(self, transport: Transport) -> None:
        """Partitions this member kept after a rebalance resume at the first event it dropped
        (the committed offset): nothing dropped is skipped, nothing polled twice stays."""
        rewind, self._rewind = self._rewind, {}
        assigned = set(transport.assignment())
        for (topic, partition), offset in rewind.items():
            if (topic, partition) not in assigned:
                continue  # another member owns it now and starts from the committed offset
            self._batch = [
                r
                for r in self._batch
                if (r.topic, r.partition) != (topic, partition) or r.offset < offset
            ]
            transport.seek(topic, partition, offset)


def next_offsets(records: Sequence[Any]) -> dict[Partition, int]:
    """``partition -> offset after its last record``: what to commit once ``records`` are done."""
    offsets: dict[Partition, int] = {}
    for record in records:
        key = (record.topic, record.partition)
        if record.offset >= offsets.get(key, -1):
            offsets[key] = record.offset + 1
    return offsets
