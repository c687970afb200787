"""Shadow and canary on a real broker: in-process workers, the shadow and output topics read
back (worker.shadow)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from model_store.release import promote_and_announce
from streamscore import jsonio
from streamscore.wire import shadow_rows
from tests.kafka_helpers import ConsumedRecord, consume_all, produce, read, wait_until
from tests.worker.conftest import TEST_TYPES, FailsOnBatches, SlowPerRow
from worker.sampling import in_canary, in_shadow
from worker.service import ScoringWorker

pytestmark = pytest.mark.broker


@pytest.fixture
def start_worker() -> Iterator[Callable[..., ScoringWorker]]:
    started: list[tuple[ScoringWorker, threading.Thread]] = []

    def start(cfg, index: int = 0) -> ScoringWorker:
        worker = ScoringWorker(cfg, index=index)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "worker did not stop"


def read_shadow(
    kafka, expected: int, timeout_s: float = 60, **options
) -> tuple[list[dict], list[ConsumedRecord]]:
    """The shadow topic's predictions, one per event (:func:`streamscore.wire.shadow_rows`),
    once ``expected`` arrived (or what came within ``timeout_s``), and its records."""
    deadline = time.monotonic() + timeout_s
    while True:  # each read starts from the beginning: long enough to see what is there
        records = consume_all(
            kafka, kafka.shadow_topic, 1, 5, settle_s=0.5, strict=False, **options
        )
        rows = [row for r in records for row in shadow_rows(jsonio.loads(r.raw))]
        if len(rows) >= expected or time.monotonic() >= deadline:
            return rows, records
        time.sleep(0.2)


def shadow_config(config_factory, kafka_section, **worker):
    """The test's config with a shadow on alias ``candidate`` and a shadow topic of its own."""
    run = kafka_section["input_topic"].removesuffix(".in")
    return config_factory(
        kafka={"shadow_topic": f"{run}.shadow"},
        worker={"shadow_alias": "candidate", **worker},
        model_store={"trusted_types": TEST_TYPES},
    )


def test_shadow_predictions_go_to_the_shadow_topic_only_with_the_same_ids_on_every_worker(
    config_factory, kafka_section, register, model_store, demo_set, start_worker
):
    cfg = shadow_config(config_factory, kafka_section, shadow_fraction=0.4)
    register(C=1.0)
    candidate = register(C=0.001, promote=False)
    model_store.promote(candidate.version, "candidate")
    workers = [start_worker(cfg, index=0), start_worker(cfg, index=1)]
    wait_until(lambda: all(w.candidates.shadow is not None for w in workers), 30, "shadow loaded")
    # Both members own partitions before the events go out (the second may join after the
    # first scored all 400 otherwise): each samples its own share of ids.
    wait_until(lambda: all(w.ready for w in workers), 30, "both members assigned")
    events = [demo_set.event(i) for i in range(400)]
    produce(cfg.kafka, events)
    expected = sorted(e["id"] for e in events if in_shadow(e["id"], 0.4))

    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=400)
    shadowed, records = read_shadow(cfg.kafka, expected=len(expected))
    assert sorted(r.value["id"] for r in outputs) == sorted(e["id"] for e in events)
    assert {r.value["model"]["version"] for r in outputs} == {1}
    assert sorted(r["id"] for r in shadowed) == expected
    assert {r["model"]["version"] for r in shadowed} == {candidate.version}
    assert {r["production"]["model"]["version"] for r in shadowed} == {1}
    by_id = {r.value["id"]: r.value for r in outputs}
    assert all(
        r["production"]["prediction"] == by_id[r["id"]]["prediction"]
        and r["production"]["probabilities"] == by_id[r["id"]]["probabilities"]
        for r in shadowed
    )
    assert {r.headers["streamscore.model.version"] for r in records} == {str(candidate.version)}
    assert len(records) < len(shadowed)  # a batch's predictions per record, not one per event
    assert all(w.status.scored > 0 for w in workers), "both members scored a share"
    status = workers[0].member_record()
    assert status["serving"] == {"production": 1}  # the shadow publishes no prediction
    shadows = [w.member_record()["candidates"]["shadow"] for w in workers]
    assert sum(s["scored"] for s in shadows) == len(expected)
    assert all(s["version"] == candidate.version for s in shadows)
    assert status["candidates"]["shadow"]["version"] == candidate.version


def test_shadow_alias_is_hot_swapped_between_batches(
    config_factory, kafka_section, register, model_store, demo_set, start_worker
):
    from streamscore.kafka_admin import ensure_topics

    cfg = shadow_config(config_factory, kafka_section)
    register()
    first = register(C=0.01, promote=False)
    model_store.promote(first.version, "candidate")
    worker = start_worker(cfg)
    wait_until(lambda: worker.candidates.shadow is not None, 30, "shadow loaded")
    produce(cfg.kafka, [demo_set.event(i) for i in range(50)])
    read_shadow(cfg.kafka, expected=50)
    second = register(C=0.1, promote=False)
    ensure_topics(cfg.kafka)
    promote_and_announce(model_store, cfg.kafka, second.version, "candidate")
    wait_until(
        lambda: (
            worker.candidates.shadow is not None
            and worker.candidates.shadow.version == second.version
        ),
        30,
        "shadow swapped",
    )
    produce(cfg.kafka, [demo_set.event(i) for i in range(50, 100)])
    shadowed, _ = read_shadow(cfg.kafka, expected=100)
    versions = {r["id"]: r["model"]["version"] for r in shadowed}
    assert {versions[f"e-{i}"] for i in range(50)} == {first.version}
    assert {versions[f"e-{i}"] for i in range(50, 100)} == {second.version}
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=100)
    assert {r.value["model"]["version"] for r in outputs} == {1}


def test_failing_shadow_does_not_touch_production_outputs(
    config_factory, kafka_section, register, model_store, demo_set, start_worker
):
    cfg = shadow_config(config_factory, kafka_section)
    register()
    broken = register(promote=False, wrap=FailsOnBatches)  # passes its one-row smoke test
    model_store.promote(broken.version, "candidate")
    worker = start_worker(cfg)
    wait_until(lambda: worker.candidates.shadow is not None, 30, "shadow loaded")
    produce(cfg.kafka, [demo_set.event(i) for i in range(300)])
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=300)
    assert sorted(r.value["id"] for r in outputs) == sorted(f"e-{i}" for i in range(300))
    assert {r.value["model"]["version"] for r in outputs} == {1}
    assert read(cfg.kafka, cfg.kafka.dead_letter_topic, expected=1, timeout_s=2) == []
    wait_until(lambda: worker.status.scored == 300, 10, "300 scored")
    skipped = worker.metrics.registry.get_sample_value(
        "streamscore_shadow_skipped_total", {"shadow_version": "2", "reason": "failed"}
    )
    # batches of one event score (the model fails on more): every sampled event is either
    # shadowed or counted as skipped
    shadowed, _ = read_shadow(cfg.kafka, expected=300, timeout_s=3)
    assert skipped is not None and skipped > 0
    assert skipped + len(shadowed) == 300


def test_shadow_over_its_budget_is_skipped_and_counted_and_production_scores_everything(
    config_factory, kafka_section, register, model_store, demo_set, start_worker
):
    cfg = shadow_config(config_factory, kafka_section, shadow_budget_ms=50)
    register()
    slow = register(promote=False, wrap=lambda m: SlowPerRow(m, 0.005))  # 5 ms a row
    model_store.promote(slow.version, "candidate")
    worker = start_worker(cfg)
    wait_until(lambda: worker.candidates.shadow is not None, 30, "shadow loaded")
    produce(cfg.kafka, [demo_set.event(i % 500, id=f"e-{i}") for i in range(600)])
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=600)
    assert sorted(r.value["id"] for r in outputs) == sorted(f"e-{i}" for i in range(600))
    wait_until(lambda: worker.status.scored == 600, 10, "600 scored")
    skipped = worker.metrics.registry.get_sample_value(
        "streamscore_shadow_skipped_total", {"shadow_version": "2", "reason": "budget"}
    )
    shadowed, _ = read_shadow(cfg.kafka, expected=600, timeout_s=3)
    # about 10 rows fit in 50 ms a batch (a first probe of 32): most of the 600 are skipped
    assert skipped is not None and skipped > 300
    assert skipped + len(shadowed) == 600


def test_canary_scores_its_share_of_ids_on_the_output_topic(
    config_factory, kafka_section, register, model_store, demo_set, start_worker
):
    cfg = config_factory(worker={"canary_alias": "canary", "canary_fraction": 0.3})
    register()
    canary = register(C=0.01, promote=False)
    model_store.promote(canary.version, "canary")
    worker = start_worker(cfg)
    wait_until(lambda: worker.candidates.canary is not None, 30, "canary loaded")
    events = [demo_set.event(i) for i in range(300)]
    produce(cfg.kafka, events)
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=300)
    versions = {r.value["id"]: r.value["model"]["version"] for r in outputs}
    assert versions == {e["id"]: 2 if in_canary(e["id"], 0.3) else 1 for e in events}
    assert 50 < sum(1 for v in versions.values() if v == 2) < 130
    canaries = sum(1 for v in versions.values() if v == 2)

    def counted(version: str) -> float | None:
        return worker.metrics.registry.get_sample_value(
            "streamscore_events_scored_total", {"model_version": version}
        )

    # counted once the batch is acknowledged, which a reader can see a moment before
    wait_until(lambda: counted("2") == canaries, 10, "the canary's events counted")
    wait_until(lambda: counted("1") == 300 - canaries, 10, "production's events counted")


def test_shadow_predictions_commit_with_the_batch_in_exactly_once_mode(
    config_factory, kafka_section, register, model_store, demo_set, start_worker, broker_engine
):
    if broker_engine == "tansu":
        pytest.skip("exactly-once needs Apache Kafka (--broker-engine kafka)")
    cfg = shadow_config(config_factory, kafka_section, delivery="exactly-once")
    register()
    candidate = register(C=0.01, promote=False)
    model_store.promote(candidate.version, "candidate")
    worker = start_worker(cfg)
    wait_until(lambda: worker.candidates.shadow is not None, 30, "shadow loaded")
    produce(cfg.kafka, [demo_set.event(i) for i in range(200)])
    shadowed, _ = read_shadow(cfg.kafka, 200, isolation_level="read_committed")
    outputs = consume_all(
        cfg.kafka, cfg.kafka.output_topic, 200, isolation_level="read_committed", settle_s=1
    )
    assert sorted(r["id"] for r in shadowed) == sorted(r.value["id"] for r in outputs)
    assert len(shadowed) == 200
