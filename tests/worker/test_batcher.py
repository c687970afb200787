"""How the worker gathers a batch: full batches under load, no waiting under light load; what a
revoke drops, the rewind after a rebalance, the offsets to commit.

These drive :class:`worker.batcher.Batcher` with a scripted client (what each poll returns and
how long it blocks) or the in-memory :class:`FakeTransport`, so the policy is checked exactly
and fast; the same loop runs against a real broker in test_stream.py and test_processes.py.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.worker.fake_transport import FakeRecord, FakeTransport
from worker.batcher import Batcher, BatchLimits, next_offsets


@dataclass
class ScriptedClient:
    """Each poll returns the next scripted list; an empty script blocks for the timeout."""

    script: list[list[int]]
    polls: list[tuple[int, int]] = field(default_factory=list)  # (timeout_ms, max_records)

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]:
        self.polls.append((timeout_ms, max_records))
        if self.script:
            return self.script.pop(0)[:max_records]
        time.sleep(timeout_ms / 1000)
        return []


def batcher(max_wait_ms: int = 200, max_batch_records: int = 1000, batch_linger_ms: int = 0):
    limits = BatchLimits(max_batch_records, max_wait_ms, batch_linger_ms)
    return Batcher(limits, threading.Event())


def gather(b: Batcher, client: ScriptedClient) -> tuple[list[Any], float]:
    started = time.monotonic()
    batch = b.gather(client)  # type: ignore[arg-type]
    return batch, time.monotonic() - started


def test_what_has_arrived_is_scored_without_waiting_for_more():
    client = ScriptedClient([[1, 2, 3]])
    batch, took = gather(batcher(), client)
    assert batch == [1, 2, 3]
    # First poll may wait for events; once some arrived, the next poll only takes what is
    # buffered (timeout 0), and finding nothing ends the batch.
    [(first_timeout, _), second] = client.polls
    assert 150 < first_timeout <= 200 and second == (0, 997)
    assert took < 0.1


def test_events_that_keep_arriving_join_the_batch_up_to_the_limit():
    client = ScriptedClient([[1, 2], [3, 4], [5, 6, 7, 8]])
    batch, _ = gather(batcher(max_batch_records=5), client)
    assert batch == [1, 2, 3, 4, 5]
    assert [m for _, m in client.polls] == [5, 3, 1]
    assert client.script == []


def test_nothing_arriving_returns_an_empty_batch_after_max_wait():
    batch, took = gather(batcher(max_wait_ms=100), ScriptedClient([]))
    assert batch == []
    assert 0.09 <= took < 0.5


def test_batch_linger_waits_for_more_after_the_first_event():
    client = ScriptedClient([[1], [], [2]])
    batch, took = gather(batcher(batch_linger_ms=150), client)
    assert batch == [1, 2]
    assert took >= 0.135
    assert all(timeout > 0 for timeout, _ in client.polls[1:-1])


IN = "events"


def owned(*partitions: int) -> list[tuple[str, int]]:
    return [(IN, p) for p in partitions]


def fake(per_partition: int = 4, partitions: int = 2) -> FakeTransport:
    logs = {(IN, p): [b"{}"] * per_partition for p in range(partitions)}
    return FakeTransport(logs)


def subscribed(transport: FakeTransport, b: Batcher) -> FakeTransport:
    transport.subscribe(IN, lambda _assigned: None, b.revoke)
    return transport


def test_gather_takes_every_assigned_partition_from_its_position():
    b = batcher(max_wait_ms=0)
    transport = subscribed(fake(), b)
    batch = b.gather(transport)
    assert [(r.partition, r.offset) for r in batch] == [(0, o) for o in range(4)] + [
        (1, o) for o in range(4)
    ]
    assert next_offsets(batch) == {(IN, 0): 4, (IN, 1): 4}


class RevokeAfter(FakeTransport):
    """Revokes ``partition`` during the poll after ``polls`` polls (as a rebalance would)."""

    def __init__(self, logs: Any, revoke_at_poll: int, keep: list[tuple[str, int]]) -> None:
        super().__init__(logs)
        self.revoke_at_poll = revoke_at_poll
        self.keep = keep

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]:
        if len(self.polls) == self.revoke_at_poll:
            self.rebalance_on_next_poll(self.keep)
        return super().poll(timeout_ms, max_records)


def test_revoke_while_gathering_drops_the_revoked_partitions_records():
    b = batcher(max_wait_ms=0, max_batch_records=3)
    logs = {(IN, 0): [b"{}"] * 2, (IN, 1): [b"{}"] * 2}
    transport = RevokeAfter(logs, revoke_at_poll=1, keep=owned(0))
    subscribed(transport, b)
    # Poll 1 assigns both partitions and returns 3 records (full batch): nothing revoked yet.
    first = b.gather(transport)
    assert [(r.partition, r.offset) for r in first] == [(0, 0), (0, 1), (1, 0)]
    transport.commit(next_offsets(first), threading.Event())
    # Poll 2 revokes partition 1 and keeps partition 0, which resumes from its commit.
    transport.append((IN, 0), [b"{}"])
    second = b.gather(transport)
    assert [(r.partition, r.offset) for r in second] == [(0, 2)]
    assert transport.assigned == owned(0)


def test_revoke_drops_gathered_records_and_a_kept_partition_is_rewound_to_them():
    b = batcher(max_wait_ms=300, max_batch_records=100, batch_linger_ms=200)
    transport = subscribed(fake(per_partition=3), b)
    gathered: list[Any] = []
    # First poll: both partitions assigned, 6 records gathered, the batch lingers for more.
    # Second poll: an eager rebalance revokes both and assigns partition 0 back, which the
    # client resumes from its commit (0): the batcher drops all 9, rewinds partition 0 to its
    # first dropped offset, and the next poll gathers its 3 records once.
    original_poll = transport.poll

    def poll(timeout_ms: int, max_records: int) -> list[Any]:
        if len(transport.polls) == 1:
            transport.rebalance_on_next_poll(owned(0))
        out = original_poll(timeout_ms, max_records)
        gathered.extend(out)
        return out

    transport.poll = poll  # type: ignore[method-assign]
    batch = b.gather(transport)
    assert [(r.partition, r.offset) for r in batch] == [(0, 0), (0, 1), (0, 2)]
    assert transport.seeks == [((IN, 0), 0)]
    assert len(gathered) == 12  # 6, then partition 0 after the rebalance, then after the rewind


def test_revoke_between_batches_drops_nothing_later():
    b = batcher(max_wait_ms=0)
    transport = subscribed(fake(per_partition=2), b)
    first = b.gather(transport)
    b.revoke(owned(1))  # while the batch is being scored: it is the scoring thread's now
    transport.append((IN, 1), [b"{}"])
    second = b.gather(transport)
    assert len(first) == 4
    assert [(r.partition, r.offset) for r in second] == [(1, 2)]
    assert transport.seeks == []


def test_revoke_from_another_thread_is_applied_by_the_gathering_thread():
    b = batcher(max_wait_ms=0)
    transport = subscribed(fake(per_partition=2), b)
    transport.poll(0, 1)  # assign; the batcher has not seen these
    thread = threading.Thread(target=b.revoke, args=(owned(0, 1),))
    thread.start()
    thread.join()
    assert b.take() == []


def test_next_offsets_is_one_past_the_last_record_of_each_partition():
    records = [FakeRecord(IN, p, o, 0, None, None) for p, o in [(0, 5), (1, 2), (0, 7), (0, 6)]]
    assert next_offsets(records) == {(IN, 0): 8, (IN, 1): 3}
    assert next_offsets([]) == {}


def test_rewind_to_an_aborted_batch_gathers_its_records_again_from_their_first_offsets():
    # Exactly-once: the batch's transaction was aborted (the group moved on), nothing of it is
    # visible, and the member kept its partitions: the same records must be scored again.
    b = batcher(max_wait_ms=0)
    transport = subscribed(fake(), b)
    first = b.gather(transport)
    assert next_offsets(first) == {(IN, 0): 4, (IN, 1): 4}

    b.rewind_to(first)
    assert b.gather(transport) == []  # its poll found nothing new, then applied the rewind
    again = b.gather(transport)

    assert sorted(transport.seeks) == [((IN, 0), 0), ((IN, 1), 0)]
    assert [(r.partition, r.offset) for r in again] == [(p, o) for p in (0, 1) for o in range(4)]
