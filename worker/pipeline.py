"""Batches in flight: published, not yet all acknowledged, their offsets not yet committed.

The scoring loop hands each scored batch's outputs to the producer (``Transport.send``) and goes
on polling and scoring the next batch while the broker acknowledges them. :class:`Pipeline`
keeps those batches, oldest first, and finishes them in order: wait for a batch's
acknowledgements, publish the replacements of outputs refused for good, commit its offsets
(:func:`worker.commit.settle_then_commit`). Batch k+1 is never committed before batch k, and
at most ``depth`` batches (``[worker] max_batches_in_flight``) are in flight, so memory stays
bounded; ``depth = 1`` is the synchronous loop (each batch finished before the next poll).

Commits may be coalesced (``[worker] commit_interval_ms`` > 0): a finished batch's offsets are
committed at once when the last commit is at least that old, otherwise they wait, merged with
the next batches', for the next commit, which comes at the latest with the first batch
finished after the interval, an empty poll, a revoke or a stop. A synchronous commit is a
round trip to the group coordinator on the scoring thread (1-4 ms with kafka-python); paid
per batch it was a fifth of a small batch's time. Nothing is committed before its outputs
are acknowledged, so the guarantee is the same; what a killed worker's successor scores again
grows by at most the interval's worth of events. ``0`` commits every batch.

What keeps the delivery guarantee with batches in flight:

- **a revoke finishes them first.** The rebalance callback asks the pipeline
  (:meth:`Pipeline.before_revoke`) before the partitions are given up: on the scoring thread
  (confluent-kafka calls it inside ``poll``) it finishes every batch in flight there and then;
  on another thread (kafka-python 3 runs it on its network thread, inside the group join,
  where the scoring thread's ``poll`` may be waiting for that join) the pipeline is returned
  as the work to do: the listener calls :meth:`Pipeline.try_finish` with a commit that does
  not block the network loop, and retries while the scoring thread is finishing batches
  itself (a lock keeps the two apart; the scoring thread never waits for the listener).
  Either way the offsets of everything in flight are committed before the member rejoins, so
  the partitions' next owner starts after them: a clean rebalance scores nothing twice, and
  nothing is lost (an unfinished batch is not committed);
- **a stop finishes them** (:meth:`Pipeline.finish` with nothing kept, from the drain);
- **broken clients drop them** (:meth:`Pipeline.end`): nothing of them is committed, the new
  clients resume from the group's commits (at-least-once);
- **order per output partition**: each batch is sent after the previous one on the same
  idempotent producer, so the broker writes them in order; a retried record (a broker
  outage) is written after what was sent since, as in the synchronous loop.

Exactly-once publishing (one transaction per batch) does not use the pipeline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from worker.commit import ReplaceRefused, settle_then_commit
from worker.processor import BatchResult, ServingModel
from worker.transport import CommitOffsets, Partition, RevokeWork, Sending, Transport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class InFlight:
    """One scored batch whose outputs were handed to the producer."""

    records: Sequence[Any]
    result: BatchResult
    model: ServingModel
    sending: Sending
    replace: ReplaceRefused | None
    #: Its offsets were committed and the commit accepted (False: refused, the group
    #: rebalanced first, at-least-once; or still waiting for a coalesced commit).
    committed: bool = False


class Pipeline:
    """The batches in flight of one scoring thread (see the module docstring)."""

    def __init__(
        self,
        depth: int,
        stop: threading.Event,
        on_finished: Callable[[InFlight], None],
        commit_interval_s: float = 0.0,
    ) -> None:
        self.depth = depth
        self.commit_interval_s = commit_interval_s
        #: Offsets of finished batches not yet committed (coalesced), partition -> next.
        self._uncommitted: dict[Partition, int] = {}
        self._committed_at = time.monotonic()
        self._stop = stop
        self._on_finished = on_finished
        self._batches: deque[InFlight] = deque()
        self._transport: Transport | None = None
        #: The scoring thread while a membership runs (None: revokes need no answer).
        self._owner: int | None = None
        #: Held while batches are added or finished (the scoring thread, or a revoke's).
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._batches)

    def start(self, transport: Transport) -> None:
        """A membership starts on ``transport``; the calling thread is the scoring thread."""
        self._batches.clear()
        self._uncommitted.clear()
        self._transport = transport
        self._owner = threading.get_ident()

    def end(self) -> None:
        """The membership ends: what is still in flight is dropped, uncommitted (its next
        owner scores it again), and revokes from now on (a closing consumer) wait for
        nothing."""
        self._owner = None
        dropped = len(self._batches)
        self._batches.clear()
        self._uncommitted.clear()  # acknowledged, not committed: scored again (at-least-once)
        self._transport = None
        if dropped:
            log.warning(
                "%d batch(es) in flight not committed; they will be scored again by the "
                "partitions' next owner",
                dropped,
            )

    def add(self, batch: InFlight) -> None:
        """A batch was sent: keep it, and finish the oldest ones until at most ``depth - 1``
        remain in flight (and any acknowledged already)."""
        with self._lock:
            self._batches.append(batch)
            self._finish(self.depth - 1, None)

    def finish(self, keep: int = 0, *, commit_now: bool = True) -> None:
        """Finish batches in order (wait for their acks, commit) until at most ``keep`` remain;
        beyond that, finish those already acknowledged, without waiting. With ``commit_now``
        every offset not yet committed is committed before it returns (an empty poll, a stop);
        without, only once the commit interval has passed."""
        with self._lock:
            self._finish(keep, None, force=commit_now)

    def _finish(self, keep: int, commit: CommitOffsets | None, force: bool = False) -> None:
        batches = self._batches
        while batches and (len(batches) > keep or batches[0].sending.acknowledged()):
            batch = batches[0]
            assert self._transport is not None, "batches in flight without clients"
            settle_then_commit(
                self._transport,
                batch.sending,
                batch.records,
                self._stop,
                batch.replace,
                self._defer,
            )
            batch.committed = self._commit_due(commit, force=False)
            batches.popleft()
            self._on_finished(batch)
        if force:
            self._commit_due(commit, force=True)

    def _defer(self, offsets: dict[Partition, int]) -> bool:
        """A finished batch's offsets join those waiting for the next commit."""
        waiting = self._uncommitted
        for partition, offset in offsets.items():
            if offset > waiting.get(partition, -1):
                waiting[partition] = offset
        return True

    def _commit_due(self, commit: CommitOffsets | None, *, force: bool) -> bool:
        """Commit what waits when ``force`` or the interval has passed (with ``commit``, a
        revoke's, when given). True when nothing waits any more: committed, or nothing to."""
        if not self._uncommitted:
            return True
        now = time.monotonic()
        if not force and now - self._committed_at < self.commit_interval_s:
            return False
        offsets, self._uncommitted = self._uncommitted, {}
        self._committed_at = now
        if commit is not None:
            return commit(offsets)
        assert self._transport is not None, "offsets to commit without clients"
        return self._transport.commit(offsets, self._stop)

    # ------------------------------------------------------------------ rebalances

    def before_revoke(self, partitions: list[Partition]) -> RevokeWork | None:
        """Called by the revoke callback before ``partitions`` are given up: the batches in
        flight are finished now (on the scoring thread), or the pipeline is returned as the
        work the callback's transport must do (:meth:`try_finish`; another thread)."""
        if self._owner is None or not (self._batches or self._uncommitted):
            return None
        if threading.get_ident() == self._owner:
            self.finish()
            return None
        return self

    def try_finish(self, commit: CommitOffsets) -> bool:
        """Finish every batch in flight, committing with ``commit``; False (at once) while the
        scoring thread is finishing batches itself."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._finish(0, commit, force=True)
        finally:
            self._lock.release()
        return True
