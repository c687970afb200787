"""The scoring worker against a real broker: in-process members, one per thread."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from streamscore import jsonio
from tests.kafka_helpers import produce, read, wait_until
from tests.worker.conftest import TEST_TYPES, FailsOnMarker
from worker.service import ScoringWorker

pytestmark = pytest.mark.broker


@pytest.fixture(params=["kafka-python", "confluent-kafka"])
def stream_config(request, config_factory):
    """config_factory for each transport: every scenario runs on both Kafka clients."""

    def factory(**sections):
        kafka = {**sections.pop("kafka", {}), "transport": request.param}
        return config_factory(kafka=kafka, **sections)

    return factory


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


def test_worker_scores_every_event_once_and_keeps_keys(
    stream_config, register, demo_set, start_worker
):
    cfg = stream_config()
    register()
    events = [demo_set.event(i) for i in range(300)]
    start_worker(cfg)
    assert produce(cfg.kafka, events) == 300
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=300)
    ids = [r.value["id"] for r in outputs]
    assert len(ids) == 300 and set(ids) == {e["id"] for e in events}
    assert all(r.key == r.value["id"].encode() for r in outputs)
    assert {r.value["model"]["version"] for r in outputs} == {1}
    assert all(r.headers["streamscore.source.topic"] == cfg.kafka.input_topic for r in outputs)


def test_worker_commits_only_what_it_published(stream_config, register, demo_set, start_worker):
    from streamscore.kafka_admin import committed_offsets

    cfg = stream_config()
    register()
    worker = start_worker(cfg)
    produce(cfg.kafka, [demo_set.event(i) for i in range(100)])
    read(cfg.kafka, cfg.kafka.output_topic, expected=100)
    wait_until(lambda: worker.status.scored == 100, 10, "100 scored")
    wait_until(
        lambda: (
            sum(committed_offsets(cfg.kafka, cfg.kafka.group_id, cfg.kafka.input_topic).values())
            == 100
        ),
        10,
        "offsets committed",
    )


def test_worker_dead_letters_bad_events_and_scores_neighbours(
    stream_config, register, demo_set, start_worker
):
    cfg = stream_config()
    register()
    missing = demo_set.event(3)
    del missing["worst_area"]
    bad = [
        b"not json at all",
        b"[1, 2, 3]",
        jsonio.dumps(missing),
        jsonio.dumps(demo_set.event(4, mean_radius="wide")),
        b'{"id": "nan-1", "mean_radius": NaN}',
    ]
    good = [demo_set.event(i) for i in range(10, 20)]
    produce(cfg.kafka, [*good[:5], *bad, *good[5:]])
    start_worker(cfg)
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=10)
    dead = read(cfg.kafka, cfg.kafka.dead_letter_topic, expected=5)
    assert sorted(r.value["id"] for r in outputs) == sorted(e["id"] for e in good)
    assert sorted(r.raw for r in dead) == sorted(bad)
    stages = Counter(r.headers["streamscore.error.stage"] for r in dead)
    assert stages == {"decode": 2, "schema": 3}
    for r in dead:
        h = r.headers
        assert h["streamscore.source.topic"] == cfg.kafka.input_topic
        assert int(h["streamscore.source.offset"]) >= 0
        assert h["streamscore.group"] == cfg.kafka.group_id
        assert h["streamscore.model.version"] == "1"
        assert h["streamscore.error.message"]


@pytest.mark.parametrize(
    ("policy", "event_extra", "outcome"),
    [
        ({"extra_fields": "ignore"}, {"colour": "red"}, "scored"),
        ({"extra_fields": "reject"}, {"colour": "red"}, "schema"),
        ({"numeric_strings": "coerce"}, {"mean_radius": "14.5"}, "scored"),
        ({"numeric_strings": "reject"}, {"mean_radius": "14.5"}, "schema"),
    ],
)
def test_worker_validation_policy_decides(
    stream_config, register, demo_set, start_worker, policy, event_extra, outcome
):
    cfg = stream_config(worker=policy)
    register()
    produce(cfg.kafka, [demo_set.event(1, **event_extra), demo_set.event(2)])
    start_worker(cfg)
    if outcome == "scored":
        assert len(read(cfg.kafka, cfg.kafka.output_topic, expected=2)) == 2
    else:
        [dead] = read(cfg.kafka, cfg.kafka.dead_letter_topic, expected=1)
        assert dead.headers["streamscore.error.stage"] == outcome
        assert [r.value["id"] for r in read(cfg.kafka, cfg.kafka.output_topic, 1)] == ["e-2"]


def test_worker_missing_id_falls_back_to_topic_partition_offset(
    stream_config, register, demo_set, start_worker
):
    cfg = stream_config()
    register()
    event = demo_set.event(0)
    del event["id"]
    produce(cfg.kafka, [event], key_field=None)
    start_worker(cfg)
    [out] = read(cfg.kafka, cfg.kafka.output_topic, expected=1)
    assert (
        out.value["id"]
        == f"{cfg.kafka.input_topic}/{out.headers['streamscore.source.partition']}/0"
    )
    assert out.key is None


def test_worker_model_failing_on_one_row_dead_letters_only_that_row(
    stream_config, register, demo_set, start_worker
):
    cfg = stream_config(model_store={"trusted_types": TEST_TYPES})
    register(wrap=lambda m: FailsOnMarker(m, -1.0))
    events = [demo_set.event(i) for i in range(50)]
    events[17]["mean_radius"] = -1.0
    produce(cfg.kafka, events)
    start_worker(cfg)
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=49)
    [dead] = read(cfg.kafka, cfg.kafka.dead_letter_topic, expected=1)
    assert len(outputs) == 49
    assert dead.headers["streamscore.error.stage"] == "predict"
    assert jsonio.loads(dead.raw)["id"] == "e-17"


def test_worker_without_model_waits_and_does_not_consume(
    stream_config, register, demo_set, start_worker
):
    cfg = stream_config()
    worker = start_worker(cfg)
    produce(cfg.kafka, [demo_set.event(i) for i in range(5)])
    wait_until(lambda: "not set" in worker.reloader.last_problem, 5, "the worker to notice")
    assert worker.status.assigned == [] and worker.status.scored == 0
    register()  # a model appears: the worker starts consuming
    assert len(read(cfg.kafka, cfg.kafka.output_topic, expected=5)) == 5


def test_worker_hot_swaps_between_batches_and_names_the_version(
    stream_config, register, model_store, demo_set, start_worker
):
    cfg = stream_config()
    register(C=1.0)
    worker = start_worker(cfg)
    produce(cfg.kafka, [demo_set.event(i) for i in range(20)])
    read(cfg.kafka, cfg.kafka.output_topic, expected=20)
    second = register(C=0.01, promote=False)
    model_store.promote(second.version)
    wait_until(lambda: worker.model is not None and worker.model.version == 2, 1.5, "swap to v2")
    produce(cfg.kafka, [demo_set.event(i, id=f"late-{i}") for i in range(20)])
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=40)
    late = [r.value for r in outputs if str(r.value["id"]).startswith("late-")]
    assert {v["model"]["version"] for v in late} == {2}
    assert all(
        r.headers["streamscore.model.version"] == "2"
        for r in outputs
        if str(r.value["id"]).startswith("late-")
    )
    model_store.rollback()
    wait_until(lambda: worker.model.version == 1, 1.5, "rollback to v1")


def test_worker_refuses_tampered_artifact_and_keeps_serving(
    stream_config, register, model_store, demo_set, start_worker
):
    cfg = stream_config()
    register()
    worker = start_worker(cfg)
    wait_until(lambda: worker.model is not None, 15, "v1 to be served")
    second = register(C=0.5, promote=False)
    artifact = model_store.folder / str(second.version) / "model.skops"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    model_store.promote(1, "production")  # no-op target; now point at the tampered one by hand
    model_store.book.move("production", second.version, action="promote", at="now")
    wait_until(lambda: "sha256" in worker.reloader.last_problem, 3, "the refusal")
    produce(cfg.kafka, [demo_set.event(i) for i in range(10)])
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=10)
    assert {r.value["model"]["version"] for r in outputs} == {1}
    assert worker.metrics.model_loads.labels(outcome="refused")._value.get() == 1


def test_prediction_goes_to_the_partition_number_of_its_event(
    stream_config, register, demo_set, start_worker
):
    cfg = stream_config()
    register()
    start_worker(cfg)
    produce(cfg.kafka, [demo_set.event(i) for i in range(200)])
    inputs = {r.value["id"]: r.partition for r in read(cfg.kafka, cfg.kafka.input_topic, 200)}
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=200)
    assert len(outputs) == 200 and len(set(inputs.values())) > 1
    for r in outputs:
        source = int(r.headers["streamscore.source.partition"])
        assert r.partition == inputs[r.value["id"]] == source


def test_output_topic_with_other_partition_count_gets_keys_hashed_by_the_client(
    stream_config, register, demo_set, start_worker
):
    from streamscore.kafka_admin import ensure_topics

    cfg = stream_config(create_topics=False)
    k = cfg.kafka
    ensure_topics(k, [k.input_topic, k.dead_letter_topic], partitions=4)
    ensure_topics(k, [k.output_topic], partitions=3)
    register()
    start_worker(cfg)
    produce(k, [demo_set.event(i) for i in range(200)])
    outputs = read(k, k.output_topic, expected=200)
    assert len(outputs) == 200
    assert {r.partition for r in outputs} == {0, 1, 2}  # partition 3 does not exist there
