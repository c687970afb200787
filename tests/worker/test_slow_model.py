"""A slow model (12 ms per row) with a short poll interval (10 s): a 1,000-row batch would take
12 s, so the member would be dropped mid-batch, its commit refused and the batch rescored,
forever. The worker caps its batches from the measured cost per row instead (worker/pacing.py):
it catches up, scores at most one batch per partition twice, and no commit is refused in a
loop. Real broker, both transports."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from streamscore.config import Config
from streamscore.wire import H_SOURCE_PARTITION
from tests.kafka_helpers import produce, read
from tests.worker.conftest import TEST_TYPES, SlowPerRow, SlowsDownAfter
from worker.pacing import PROBE_RECORDS
from worker.service import ScoringWorker

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(400)]

EVENTS = 3000
SECONDS_PER_ROW = 0.012


@pytest.mark.parametrize("transport", ["kafka-python", "confluent-kafka"])
def test_slow_model_catches_up_without_a_rescoring_loop(
    config_factory, register, demo_set, transport, caplog
):
    cfg = config_factory(
        kafka={"transport": transport, "max_poll_interval_ms": 10_000},
        worker={"max_batch_records": 1000, "assignment": "group"},
        model_store={"trusted_types": TEST_TYPES},
    )
    register(wrap=lambda m: SlowPerRow(m, SECONDS_PER_ROW))
    ids = [f"s-{i}" for i in range(EVENTS)]
    produce(cfg.kafka, [demo_set.event(i % 500, id=ident) for i, ident in enumerate(ids)])
    caplog.set_level(logging.WARNING, logger="worker.transport")
    worker, scored, caught_up_s = score_every_id(cfg, ids, timeout_s=240, settle_s=2)
    refused = [r for r in caplog.records if "commit refused" in r.getMessage()]
    largest = worker.pacer.cap(worker.model.version_text)
    print(
        f"{transport}: {scored.outputs} outputs for {EVENTS} inputs, scored twice by source "
        f"partition {dict(scored.twice)}, {len(refused)} commits refused, caught up in "
        f"{caught_up_s:.1f} s, batch cap {largest}"
    )
    # At most one batch per partition scored twice (a batch is at most the pacer's cap).
    assert max(scored.twice.values(), default=0) <= max(largest, PROBE_RECORDS)
    assert len(refused) <= cfg.kafka.partitions, "commits refused in a loop"
    assert largest * SECONDS_PER_ROW <= 0.33 * 10 * 1.2  # the cap fits the budget


FAST_ROWS = 1500
SLOW_PER_ROW = 0.030


@pytest.mark.parametrize("transport", ["kafka-python", "confluent-kafka"])
def test_a_model_slowing_after_the_pacer_learned_it_fast_rescores_only_batches_in_flight(
    config_factory, register, demo_set, transport, caplog
):
    """Fast for 1,500 rows (the pacer allows full 1,000-row batches), then 30 ms a row: the
    next full batch takes 30 s, three times the poll interval, and the member is dropped
    mid-batch. It rejoins, the pacer believes the slowdown at once, and the worker catches up:
    that one batch scored twice, no refused-commit loop."""
    cfg = config_factory(
        kafka={"transport": transport, "max_poll_interval_ms": 10_000},
        worker={"max_batch_records": 1000, "assignment": "group"},
        model_store={"trusted_types": TEST_TYPES},
    )
    register(wrap=lambda m: SlowsDownAfter(m, FAST_ROWS, SLOW_PER_ROW))
    ids = [f"d-{i}" for i in range(EVENTS)]
    produce(cfg.kafka, [demo_set.event(i % 500, id=ident) for i, ident in enumerate(ids)])
    caplog.set_level(logging.WARNING, logger="worker.transport")
    worker, scored, caught_up_s = score_every_id(cfg, ids, timeout_s=300, settle_s=3)
    refused = [r for r in caplog.records if "commit refused" in r.getMessage()]
    print(
        f"{transport}: {scored.outputs} outputs for {EVENTS} inputs, scored twice by source "
        f"partition {dict(scored.twice)}, {len(refused)} commits refused, caught up in "
        f"{caught_up_s:.1f} s, batch cap now {worker.pacer.cap(worker.model.version_text)}"
    )
    # It resumes from the last commit: what was in flight and uncommitted when it was dropped
    # is scored again, that is the batch that outlived the interval and the one published
    # before it if its acks came after the slow batch started (max_batches_in_flight batches
    # uncommitted), nothing more: no loop.
    assert scored.twice.total() <= cfg.worker.max_batches_in_flight * cfg.worker.max_batch_records
    assert len(refused) <= cfg.kafka.partitions, "commits refused in a loop"


@dataclass(frozen=True)
class Scored:
    """What a run produced: outputs read, and events scored more than once by the partition
    they were read from (an event scored three times counts twice)."""

    outputs: int
    twice: Counter[int]


def score_every_id(
    cfg: Config, ids: list[str], *, timeout_s: float, settle_s: float
) -> tuple[ScoringWorker, Scored, float]:
    """Run a worker until every id has a prediction (or ``timeout_s``), wait ``settle_s`` for
    anything scored again, stop it: the worker, what it produced, the time to catch up.
    Every id, not a count of outputs: a dropped batch's copies count among the outputs."""
    worker = ScoringWorker(cfg)
    started = time.monotonic()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=len(ids), timeout_s=timeout_s)
        while set(ids) - {r.value["id"] for r in outputs} and (
            time.monotonic() - started < timeout_s
        ):
            outputs = read(cfg.kafka, cfg.kafka.output_topic, len(outputs) + 1, timeout_s=10)
        caught_up_s = time.monotonic() - started
        time.sleep(settle_s)  # anything scored again would arrive now
        outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=len(outputs) + 1, timeout_s=5)
    finally:
        worker.stop()
        thread.join(timeout=90)
        assert not thread.is_alive(), "worker did not stop"
    counts = Counter(r.value["id"] for r in outputs)
    missing = set(ids) - set(counts)
    assert not missing, f"{len(missing)} of {len(ids)} not scored in {caught_up_s:.0f} s"
    twice: Counter[int] = Counter()
    seen: set[str] = set()
    for record in outputs:
        ident = record.value["id"]
        if ident in seen:
            twice[int(record.headers[H_SOURCE_PARTITION])] += 1
        seen.add(ident)
    return worker, Scored(len(outputs), twice), caught_up_s
