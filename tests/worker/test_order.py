"""Order: within each output partition, predictions appear in input-offset order, including
when their batch was bisected around rows the model cannot score and when dead letters
(undecodable events, rows the model refuses) sit between them. Real broker, both transports.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest

from tests.kafka_helpers import produce_json, read
from tests.worker.conftest import TEST_TYPES, FailsOnMarker
from worker.service import ScoringWorker

pytestmark = pytest.mark.broker

BAD_BYTES = b"\xff{not json"


@pytest.mark.parametrize("transport", ["kafka-python", "confluent-kafka"])
def test_predictions_keep_input_offset_order_through_bisection_and_dead_letters(
    config_factory, register, demo_set, transport
):
    cfg = config_factory(
        kafka={"transport": transport},
        worker={"max_batch_records": 64},
        model_store={"trusted_types": TEST_TYPES},  # FailsOnMarker is the test's own type
    )
    register(wrap=lambda m: FailsOnMarker(m, -1.0))
    good: set[str] = set()
    refused: set[str] = set()
    values: list[object] = []
    for i in range(1200):
        if i % 11 == 5:
            values.append(BAD_BYTES)  # decode dead letter
            continue
        event = demo_set.event(i % 500, id=f"o-{i}")
        if i % 7 == 3:
            event["mean_radius"] = -1.0  # the model raises on it: its batch is bisected
            refused.add(event["id"])
        else:
            good.add(event["id"])
        values.append(event)
    worker = ScoringWorker(cfg)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        # In chunks, spread over the partitions by key, so batches mix partitions and overlap.
        sent: list[tuple[int, int]] = []
        for start in range(0, len(values), 150):
            chunk = values[start : start + 150]
            sent += produce_json(cfg.kafka, cfg.kafka.input_topic, chunk, key_field="id")  # type: ignore[arg-type]
        outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=len(good))
        dead = read(cfg.kafka, cfg.kafka.dead_letter_topic, expected=len(values) - len(good))
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "worker did not stop"
    assert len(outputs) == len(good) and {r.value["id"] for r in outputs} == good
    stages = defaultdict(int)
    for record in dead:
        stages[record.headers["streamscore.error.stage"]] += 1
    assert dict(stages) == {
        "decode": len(values) - len(good) - len(refused),
        "predict": len(refused),
    }
    # Each output partition holds one input partition's predictions (same partition counts),
    # read back in output-offset order: their source offsets must only increase.
    by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for record in sorted(outputs, key=lambda r: (r.partition, r.offset)):
        source = int(record.headers["streamscore.source.partition"])
        by_partition[record.partition].append(
            (source, int(record.headers["streamscore.source.offset"]))
        )
    assert len(by_partition) == cfg.kafka.partitions
    for partition, sources in by_partition.items():
        assert {s for s, _ in sources} == {partition}
        offsets = [o for _, o in sources]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), (
            f"output partition {partition} out of input order"
        )
    assert len(sent) == len(values)
