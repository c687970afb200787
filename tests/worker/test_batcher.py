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


def test_an_idle_worker_waits_longer_for_the_first_event_and_a_busy_one_does_not():
    limits = BatchLimits(1000, 10, idle_after_ms=150, idle_wait_ms=120)
    b = Batcher(limits, threading.Event())
    client = ScriptedClient([[1, 2]])
    assert gather(b, client)[0] == [1, 2]  # events: busy
    assert not b.idle()
    client.polls.clear()
    gather(b, client)  # nothing for 10 ms: not idle yet, short waits
    assert all(timeout <= 10 for timeout, _ in client.polls)
    time.sleep(0.16)
    assert b.idle()
    client.polls.clear()
    batch, took = gather(b, client)  # idle: one long wait instead of a poll every 10 ms
    assert batch == [] and took >= 0.11
    assert client.polls[0][0] > 100
    client.script = [[3]]
    assert gather(b, client)[0] == [3]  # an event ends the idle spell at once
    assert not b.idle()


def test_idle_after_0_never_waits_longer():
    b = Batcher(BatchLimits(1000, 10, idle_after_ms=0, idle_wait_ms=500), threading.Event())
    time.sleep(0.05)
    assert not b.idle()
    _, took = gather(b, ScriptedClient([]))
    assert took < 0.1


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
    transport.subscribe(IN, b.assign, b.revoke)
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


def test_revoke_between_batches_leaves_the_batch_in_flight_and_waits_for_the_assignment():
    b = batcher(max_wait_ms=0)
    transport = subscribed(fake(per_partition=2), b)
    first = b.gather(transport)
    b.revoke(owned(1))  # while the batch is being scored: that batch is the scoring thread's
    transport.commit(next_offsets(first), threading.Event())
    transport.append((IN, 1), [b"{}"])
    # The client still hands out partition 1 (its assignment is not applied yet): dropped.
    second = b.gather(transport)
    assert len(first) == 4
    assert second == []
    assert b.owned == owned(0)
    # Assigned back: rewound to the first dropped offset, gathered once.
    transport.rebalance_on_next_poll(owned(0, 1))
    third = b.gather(transport)
    assert [(r.partition, r.offset) for r in third] == [(1, 2)]
    assert transport.seeks == [((IN, 1), 2)]


def test_revoke_from_another_thread_is_applied_by_the_gathering_thread():
    b = batcher(max_wait_ms=0)
    transport = subscribed(fake(per_partition=2), b)
    transport.poll(0, 1)  # assign; the batcher has not seen these
    thread = threading.Thread(target=b.revoke, args=(owned(0, 1),))
    thread.start()
    thread.join()
    assert b.take() == []


class NetworkThreadRebalance(FakeTransport):
    """Runs the rebalance callbacks on a thread of its own during ``poll``, as kafka-python 3
    does on its network thread (the caller blocked in ``poll`` meanwhile)."""

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]:
        if self._next_assignment is None:
            return super().poll(timeout_ms, max_records)
        network = threading.Thread(target=self._rebalance)
        network.start()
        network.join()
        return super().poll(timeout_ms, max_records)


def test_rebalance_state_is_changed_by_the_gathering_thread_only():
    changes: list[tuple[list[tuple[str, int]], bool, str]] = []

    def on_change(partitions: list[tuple[str, int]], joined: bool) -> None:
        changes.append((partitions, joined, threading.current_thread().name))

    b = Batcher(BatchLimits(100, 0), threading.Event(), on_change)
    transport = NetworkThreadRebalance({(IN, p): [b"{}"] * 3 for p in range(2)})
    transport.subscribe(IN, b.assign, b.revoke)
    scorer = threading.current_thread().name
    assert len(b.gather(transport)) == 6
    transport.commit({(IN, 0): 1, (IN, 1): 3}, threading.Event())
    transport.rebalance_on_next_poll(owned(0))
    batch = b.gather(transport)
    assert [(r.partition, r.offset) for r in batch] == [(0, 1), (0, 2)]
    # One change per applied poll, each on the scoring thread, ending with the assignment.
    assert changes == [(owned(0, 1), True, scorer), (owned(0), True, scorer)]


class TwoStepRebalance(FakeTransport):
    """Revokes during one poll and assigns during a later one, as librdkafka does (its
    revoke and assign callbacks come from separate polls of an eager rebalance)."""

    def revoke_now(self) -> None:
        assert self._on_revoke is not None
        self._on_revoke(list(self.assigned))

    def assign_now(self, assignment: list[tuple[str, int]]) -> None:
        assert self._on_assign is not None
        self.assigned = assignment
        self.positions = {p: self.committed.get(p, 0) for p in assignment}
        self._on_assign(list(assignment))


def test_a_rewind_waits_for_the_assignment_and_is_forgotten_for_a_partition_moved_away():
    b = batcher(max_wait_ms=300, max_batch_records=100, batch_linger_ms=100)
    transport = TwoStepRebalance({(IN, p): [b"{}"] * 3 for p in range(2)})
    transport.subscribe(IN, b.assign, b.revoke)
    script = iter(
        [
            lambda: None,  # poll 1: both assigned, 6 records gathered, the batch lingers
            transport.revoke_now,  # poll 2: revoked; the client still hands out records
            lambda: transport.assign_now(owned(1)),  # poll 3: partition 1 only
        ]
    )
    original_poll = transport.poll

    def poll(timeout_ms: int, max_records: int) -> list[Any]:
        next(script, lambda: None)()
        transport.append((IN, 0), [b"{}"])  # partition 0 keeps growing meanwhile
        return original_poll(timeout_ms, max_records)

    transport.poll = poll  # type: ignore[method-assign]
    batch = b.gather(transport)
    # Partition 0 moved away: its rewind is forgotten (its new owner resumes from the
    # commit); partition 1 is rewound to its first dropped offset and gathered once.
    assert [(r.partition, r.offset) for r in batch] == [(1, 0), (1, 1), (1, 2)]
    assert transport.seeks == [((IN, 1), 0)]
    assert b.owned == owned(1)


def test_callbacks_racing_the_gathering_thread_never_leave_a_revoked_partition_in_a_batch():
    """Revokes and assignments arrive from another thread at random moments while batches are
    gathered; every batch holds only partitions owned when it was returned, no offset twice."""
    b = Batcher(BatchLimits(50, 0), threading.Event())
    parts = owned(0, 1, 2, 3)
    transport = FakeTransport({p: [b"{}"] * 20_000 for p in parts})
    transport.subscribe(IN, b.assign, b.revoke)
    stop = threading.Event()

    def churn() -> None:
        import random

        rng = random.Random(11)
        while not stop.is_set():
            lost = [p for p in parts if rng.random() < 0.5]
            b.revoke(lost)
            time.sleep(rng.random() / 2000)
            b.assign(lost)
            time.sleep(rng.random() / 2000)

    thread = threading.Thread(target=churn)
    thread.start()
    seen: set[tuple[int, int]] = set()
    try:
        for _ in range(400):
            batch = b.gather(transport)
            keys = {(r.partition, r.offset) for r in batch}
            assert len(keys) == len(batch)
            assert not keys & seen, "a record gathered twice"
            assert {(r.topic, r.partition) for r in batch} <= set(b.owned)
            seen |= keys
    finally:
        stop.set()
        thread.join()
    # Nothing skipped: each partition was gathered from 0 up to where it stopped.
    for p in range(4):
        offsets = sorted(o for q, o in seen if q == p)
        assert offsets == list(range(len(offsets)))


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
    again = b.gather(transport)  # seeks back before it polls

    assert sorted(transport.seeks) == [((IN, 0), 0), ((IN, 1), 0)]
    assert [(r.partition, r.offset) for r in again] == [(p, o) for p in (0, 1) for o in range(4)]
