"""The batches in flight (worker.pipeline) on an in-memory transport: acks awaited while the
next batch is polled, commits in order, at most ``depth`` in flight, a revoke or a stop finishes
them, broken clients drop them. The loop's guarantees on a real broker are in
test_rebalance_stress.py, test_restarts.py (SIGTERM) and test_refusals.py."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest

from streamscore.wire import OutRecord
from tests.worker.fake_transport import FakeRecord, FakeTransport
from worker.pipeline import InFlight, Pipeline

pytestmark = pytest.mark.timeout(30)

TOPIC = "events"


def batch(transport: FakeTransport, partition: int, first: int, size: int) -> InFlight:
    """A scored batch of ``size`` records from ``first`` on, its outputs handed to ``send``."""
    records = [
        FakeRecord(TOPIC, partition, offset, 0, None, b"{}")
        for offset in range(first, first + size)
    ]
    outputs = [OutRecord("predictions", None, b"{}", [], partition) for _ in records]
    return InFlight(records, cast(Any, None), cast(Any, None), transport.send(outputs), None)


def make(
    depth: int, commit_interval_s: float = 0.0
) -> tuple[FakeTransport, Pipeline, list[InFlight]]:
    transport = FakeTransport({(TOPIC, 0): [], (TOPIC, 1): []})
    transport.acks_at_once = False  # a sent batch waits for its acks until it is settled
    finished: list[InFlight] = []
    pipeline = Pipeline(depth, threading.Event(), finished.append, commit_interval_s)
    pipeline.start(transport)
    return transport, pipeline, finished


def calls(transport: FakeTransport) -> list[tuple[str, Any]]:
    return [c for c in transport.history if c[0] != "poll"]


def test_with_two_in_flight_the_first_batch_is_committed_only_after_the_second_was_sent() -> None:
    transport, pipeline, finished = make(depth=2)
    pipeline.add(batch(transport, 0, 0, 3))
    assert transport.commits == [] and len(pipeline) == 1  # acks awaited later

    pipeline.add(batch(transport, 0, 3, 2))  # batch 2 sent while batch 1 is unacknowledged

    assert calls(transport) == [
        ("send", 3),
        ("send", 2),
        ("settle", 3),
        ("commit", {(TOPIC, 0): 3}),
    ]
    pipeline.finish()
    assert transport.commits == [{(TOPIC, 0): 3}, {(TOPIC, 0): 5}]  # in order, never 2 before 1
    assert [len(b.records) for b in finished] == [3, 2] and all(b.committed for b in finished)
    assert len(pipeline) == 0


def test_depth_one_is_the_synchronous_loop() -> None:
    transport, pipeline, _ = make(depth=1)
    pipeline.add(batch(transport, 0, 0, 3))
    assert calls(transport) == [("send", 3), ("settle", 3), ("commit", {(TOPIC, 0): 3})]


def test_never_more_than_depth_batches_in_flight() -> None:
    transport, pipeline, _ = make(depth=3)
    for k in range(10):
        pipeline.add(batch(transport, k % 2, k, 1))
        assert len(pipeline) <= 2  # after add: depth - 1 left unacknowledged
    pipeline.finish()
    assert len(transport.commits) == 10


def test_batches_already_acknowledged_are_committed_without_waiting_for_the_depth() -> None:
    transport, pipeline, _ = make(depth=4)
    transport.acks_at_once = True
    pipeline.add(batch(transport, 0, 0, 3))
    assert transport.commits == [{(TOPIC, 0): 3}]


def test_a_revoke_on_the_scoring_thread_finishes_every_batch_in_flight_before_it_returns() -> None:
    transport, pipeline, _ = make(depth=3)
    pipeline.add(batch(transport, 0, 0, 3))
    pipeline.add(batch(transport, 1, 0, 4))

    waiting = pipeline.before_revoke([(TOPIC, 0), (TOPIC, 1)])  # as confluent-kafka, in poll

    assert waiting is None
    assert transport.commits == [{(TOPIC, 0): 3}, {(TOPIC, 1): 4}]
    assert len(pipeline) == 0


def test_a_revoke_on_another_thread_leaves_the_batches_to_its_transport_to_finish() -> None:
    transport, pipeline, _ = make(depth=3)
    pipeline.add(batch(transport, 0, 0, 3))
    pipeline.add(batch(transport, 0, 3, 2))
    result: list[Any] = []
    network = threading.Thread(  # as kafka-python 3, on its network thread
        target=lambda: result.append(pipeline.before_revoke([(TOPIC, 0)]))
    )
    network.start()
    network.join()
    [work] = result
    assert work is not None
    assert transport.commits == []  # nothing committed by the scoring thread's client

    sent: list[dict[Any, int]] = []
    assert work.try_finish(lambda offsets: sent.append(offsets) or True)

    assert sent == [{(TOPIC, 0): 3}, {(TOPIC, 0): 5}]  # through the listener's commit, in order
    assert len(pipeline) == 0


def test_a_revoke_off_thread_retries_while_the_scoring_thread_is_finishing_batches() -> None:
    transport, pipeline, _ = make(depth=3)
    pipeline.add(batch(transport, 0, 0, 3))
    with pipeline._lock:  # the scoring thread inside finish()
        assert not pipeline.try_finish(lambda offsets: True)
    assert pipeline.try_finish(lambda offsets: True)


def test_a_revoke_with_nothing_in_flight_has_nothing_to_wait_for() -> None:
    _, pipeline, _ = make(depth=3)
    assert pipeline.before_revoke([(TOPIC, 0)]) is None


def test_broken_clients_drop_the_batches_in_flight_uncommitted() -> None:
    transport, pipeline, finished = make(depth=3)
    pipeline.add(batch(transport, 0, 0, 3))
    pipeline.end()
    assert transport.commits == [] and finished == [] and len(pipeline) == 0
    # a closing consumer's revoke afterwards waits for nothing
    assert pipeline.before_revoke([(TOPIC, 0)]) is None


# --------------------------------------------------------------------------- coalesced commits


def test_within_the_commit_interval_finished_batches_wait_for_one_commit_of_them_all() -> None:
    transport, pipeline, finished = make(depth=1, commit_interval_s=60.0)
    pipeline.add(batch(transport, 0, 0, 3))
    pipeline.add(batch(transport, 1, 0, 2))
    pipeline.add(batch(transport, 0, 3, 4))
    assert transport.commits == []  # acknowledged, not yet committed
    assert len(finished) == 3 and not any(b.committed for b in finished)

    pipeline.finish()  # an empty poll or a stop: everything waiting is committed now

    assert transport.commits == [{(TOPIC, 0): 7, (TOPIC, 1): 2}]  # the highest per partition


def test_a_commit_is_never_made_before_the_outputs_are_acknowledged() -> None:
    transport, pipeline, _ = make(depth=2, commit_interval_s=0.0)
    pipeline.add(batch(transport, 0, 0, 3))
    assert transport.commits == []  # sent, unacknowledged: nothing to commit yet
    pipeline.finish()
    assert calls(transport)[-2:] == [("settle", 3), ("commit", {(TOPIC, 0): 3})]


def test_the_first_batch_finished_after_the_interval_commits_what_waited() -> None:
    transport, pipeline, _ = make(depth=1, commit_interval_s=0.05)
    pipeline.add(batch(transport, 0, 0, 3))  # the interval runs from the pipeline's start
    assert transport.commits == []
    time.sleep(0.06)
    pipeline.add(batch(transport, 0, 3, 2))
    assert transport.commits == [{(TOPIC, 0): 5}]


def test_a_revoke_commits_offsets_waiting_for_the_interval_even_with_nothing_in_flight() -> None:
    transport, pipeline, _ = make(depth=1, commit_interval_s=60.0)
    pipeline.add(batch(transport, 0, 0, 3))
    assert len(pipeline) == 0 and transport.commits == []

    assert pipeline.before_revoke([(TOPIC, 0)]) is None  # on the scoring thread: done at once

    assert transport.commits == [{(TOPIC, 0): 3}]  # the next owner starts after them


def test_a_revoke_off_thread_commits_waiting_offsets_through_the_listeners_commit() -> None:
    transport, pipeline, _ = make(depth=1, commit_interval_s=60.0)
    pipeline.add(batch(transport, 0, 0, 3))
    result: list[Any] = []
    network = threading.Thread(target=lambda: result.append(pipeline.before_revoke([(TOPIC, 0)])))
    network.start()
    network.join()
    [work] = result
    assert work is not None

    sent: list[dict[Any, int]] = []
    assert work.try_finish(lambda offsets: sent.append(offsets) or True)

    assert sent == [{(TOPIC, 0): 3}] and transport.commits == []


def test_broken_clients_drop_offsets_waiting_for_their_commit() -> None:
    transport, pipeline, _ = make(depth=1, commit_interval_s=60.0)
    pipeline.add(batch(transport, 0, 0, 3))
    pipeline.end()  # the new clients resume from the group's commits: scored again
    pipeline.start(transport)
    pipeline.finish()
    assert transport.commits == []
