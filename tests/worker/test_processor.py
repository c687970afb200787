"""BatchProcessor: consumed records in, predictions and dead letters out (no broker needed)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from streamscore import jsonio
from streamscore.wire import headers_dict
from tests.worker.conftest import FailsOnMarker
from worker.processor import BatchProcessor, Destinations, ServingModel
from worker.sizes import record_size
from worker.validation import ValidationPolicy


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


def records(values, partition=0):
    return [
        Rec("in", partition, i, 1_700_000_000_000 + i, f"k{i}".encode(), v)
        for i, v in enumerate(values)
    ]


def serving(model_store, policy=None, passthrough=()):
    loaded = model_store.load("production")
    return ServingModel(
        loaded,
        policy or ValidationPolicy(),
        alias="production",
        seq=1,
        allowed_extra=("id", *passthrough),
    )


DEST = Destinations("out", "dlq", group="g", worker_id="w-1", passthrough=("label",))


def test_process_valid_events_gives_one_prediction_each_with_contract_fields(
    register, model_store, demo_set
):
    register()
    batch = records([jsonio.dumps(demo_set.event(i, label=int(demo_set.y[i]))) for i in range(10)])
    result = BatchProcessor(DEST).process(batch, serving(model_store))
    assert result.scored == 10 and not result.dead_letters
    first = result.records[0]
    assert first.topic == "out" and first.key == b"k0"
    body = jsonio.loads(first.value)
    assert set(body) == {"id", "prediction", "probabilities", "model", "scored_at", "label"}
    assert body["id"] == "e-0"
    assert body["model"] == {"name": "demo", "version": 1}
    assert set(body["probabilities"]) == {"0", "1"}
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-9
    headers = headers_dict(first.headers)
    assert headers["streamscore.source.topic"] == "in"
    assert headers["streamscore.source.offset"] == "0"
    assert headers["streamscore.model.version"] == "1"


def test_process_event_without_id_falls_back_to_topic_partition_offset(
    register, model_store, demo_set
):
    register()
    event = demo_set.event(0)
    del event["id"]
    result = BatchProcessor(DEST).process(
        records([jsonio.dumps(event)], partition=3), serving(model_store)
    )
    assert jsonio.loads(result.records[0].value)["id"] == "in/3/0"


def test_process_dead_letters_keep_original_bytes_and_say_why(register, model_store, demo_set):
    register()
    missing = demo_set.event(2)
    del missing["mean_radius"]
    values = [
        jsonio.dumps(demo_set.event(0)),
        b"{not json",
        b"[1, 2]",
        jsonio.dumps(missing),
        jsonio.dumps(demo_set.event(1, mean_area="big")),
        json.dumps(demo_set.event(3, mean_texture=float("nan"))).encode(),
        jsonio.dumps(demo_set.event(4)),
    ]
    result = BatchProcessor(DEST).process(records(values), serving(model_store))
    assert result.scored == 2
    assert result.dead_letters == {"decode": 2, "schema": 3}
    dead = [r for r in result.records if r.topic == "dlq"]
    assert [r.value for r in dead] == values[1:6]
    by_offset = {
        headers_dict(r.headers)["streamscore.source.offset"]: headers_dict(r.headers) for r in dead
    }
    assert by_offset["1"]["streamscore.error.stage"] == "decode"
    assert by_offset["1"]["streamscore.error.class"] == "JSONDecodeError"
    assert by_offset["2"]["streamscore.error.message"].endswith("got a JSON array")
    assert by_offset["3"]["streamscore.error.stage"] == "schema"
    assert by_offset["3"]["streamscore.error.message"] == (
        'feature "mean_radius" missing (model demo v1 requires 30 features)'
    )
    assert "mean_area" in by_offset["4"]["streamscore.error.message"]
    assert "not finite" in by_offset["5"]["streamscore.error.message"]
    h = by_offset["3"]
    assert h["streamscore.group"] == "g" and h["streamscore.worker"] == "w-1"
    assert h["streamscore.source.timestamp"] == str(1_700_000_000_003)
    assert h["streamscore.model.version"] == "1"


def test_process_predict_failure_dead_letters_only_that_row(register, model_store, demo_set):
    register(wrap=lambda m: FailsOnMarker(m, -1.0))
    values = [jsonio.dumps(demo_set.event(i)) for i in range(20)]
    values[7] = jsonio.dumps(demo_set.event(7, mean_radius=-1.0))
    result = BatchProcessor(DEST).process(records(values), serving(model_store))
    assert result.scored == 19
    assert result.dead_letters == {"predict": 1}
    [dead] = [r for r in result.records if r.topic == "dlq"]
    h = headers_dict(dead.headers)
    assert h["streamscore.error.stage"] == "predict"
    assert h["streamscore.source.offset"] == "7"
    assert h["streamscore.error.class"] == "ValueError"


def test_process_value_the_encoder_cannot_write_back_is_dead_lettered_as_encode(
    register, model_store, demo_set
):
    """A passthrough integer beyond 64 bits decodes (through the NaN-tolerant decoder) but
    cannot be encoded into the prediction: that record alone goes to the dead letters."""
    register()
    huge = demo_set.event(1, label=10**30, note=float("nan"))  # NaN: an ignored extra field
    values = [
        jsonio.dumps(demo_set.event(0)),
        json.dumps(huge).encode(),
        jsonio.dumps(demo_set.event(2)),
    ]
    result = BatchProcessor(DEST).process(
        records(values), serving(model_store, passthrough=("label",))
    )
    outputs = [r for r in result.records if r.topic == "out"]
    [dead] = [r for r in result.records if r.topic == "dlq"]
    assert [jsonio.loads(r.value)["id"] for r in outputs] == ["e-0", "e-2"]
    assert headers_dict(dead.headers)["streamscore.error.stage"] == "encode"
    assert dead.value == values[1]
    assert result.scored == 2 and result.dead_letters["encode"] == 1


def test_process_nesting_too_deep_for_any_decoder_is_dead_lettered_as_decode(
    register, model_store, demo_set
):
    register()
    deep = b'{"mean_radius": NaN, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    values = [deep, jsonio.dumps(demo_set.event(1))]
    result = BatchProcessor(DEST).process(records(values), serving(model_store))
    [dead] = [r for r in result.records if r.topic == "dlq"]
    assert headers_dict(dead.headers)["streamscore.error.stage"] == "decode"
    assert result.scored == 1


def test_process_integer_too_large_for_a_float_is_a_schema_dead_letter_alone(
    register, model_store, demo_set
):
    """The NaN-tolerant decoder keeps a 400-digit integer as an int; the matrix builder's
    float conversion raises OverflowError on it (no validation rule foresaw it): the batch is
    built again event by event, that event alone is dead, its neighbours are scored."""
    register()
    huge = json.dumps(demo_set.event(1, mean_radius=10**400, note=float("nan"))).encode()
    values = [jsonio.dumps(demo_set.event(0)), huge, jsonio.dumps(demo_set.event(2))]
    result = BatchProcessor(DEST).process(records(values), serving(model_store))
    outputs = [r for r in result.records if r.topic == "out"]
    [dead] = [r for r in result.records if r.topic == "dlq"]
    assert [jsonio.loads(r.value)["id"] for r in outputs] == ["e-0", "e-2"]
    h = headers_dict(dead.headers)
    assert h["streamscore.error.stage"] == "schema"
    assert h["streamscore.error.class"] == "OverflowError"
    assert dead.value == huge


def test_process_any_exception_of_a_stage_is_that_records_dead_letter(
    register, model_store, demo_set, monkeypatch
):
    """Whatever raises on the way (here the prediction headers, for one record) makes the batch
    go record by record: that record is dead with the stage it reached, the rest scored in
    order."""
    register()
    model = serving(model_store)
    real = model.headers

    def headers(record):
        if record.offset == 3:
            raise RuntimeError("cannot write this record's headers")
        return real(record)

    monkeypatch.setattr(model, "headers", headers)
    values = [jsonio.dumps(demo_set.event(i)) for i in range(6)]
    result = BatchProcessor(DEST).process(records(values), model)
    outputs = [r for r in result.records if r.topic == "out"]
    [dead] = [r for r in result.records if r.topic == "dlq"]
    assert [jsonio.loads(r.value)["id"] for r in outputs] == ["e-0", "e-1", "e-2", "e-4", "e-5"]
    h = headers_dict(dead.headers)
    assert (h["streamscore.error.stage"], h["streamscore.error.class"]) == (
        "encode",
        "RuntimeError",
    )
    assert h["streamscore.source.offset"] == "3"
    assert result.scored == 5 and result.dead_letters == {"encode": 1}
    assert result.matrix.shape == (5, 30)  # drift counts the records handled whole


SMALL = Destinations(
    "out", "dlq", group="g", worker_id="w-1", passthrough=("label",), max_message_bytes=65_536
)


def test_process_oversized_event_dead_letter_carries_its_first_kib_and_its_length(
    register, model_store, demo_set
):
    register()
    big = b"{" + b"x" * 200_000  # 200 kB of malformed JSON, limit 64 KiB
    result = BatchProcessor(SMALL).process(
        records([big, jsonio.dumps(demo_set.event(1))]), serving(model_store)
    )
    [dead] = [r for r in result.records if r.topic == "dlq"]
    h = headers_dict(dead.headers)
    assert h["streamscore.error.stage"] == "decode"
    assert h["streamscore.value.truncated"] == "true"
    assert h["streamscore.value.length"] == "200001"
    assert h["streamscore.source.topic"] == "in" and h["streamscore.source.offset"] == "0"
    assert dead.value is not None and big.startswith(dead.value)
    assert len(dead.value) % 1024 == 0 and 60 * 1024 <= len(dead.value) < 64 * 1024
    assert record_size(dead) <= 65_536
    assert result.scored == 1


def test_process_oversized_prediction_is_a_publish_dead_letter_with_the_input(
    register, model_store, demo_set
):
    """A passthrough field makes the prediction larger than the limit: it is not produced; the
    input (under the limit) goes to the dead letters whole, stage publish."""
    register()
    event = jsonio.dumps(demo_set.event(0, label="y" * 40_000))
    twice = jsonio.dumps(demo_set.event(1, label="y" * 70_000))  # input itself over the limit
    result = BatchProcessor(SMALL).process(
        records([event, twice, jsonio.dumps(demo_set.event(2))]),
        serving(model_store, passthrough=("label",)),
    )
    outputs = [r for r in result.records if r.topic == "out"]
    dead = [r for r in result.records if r.topic == "dlq"]
    assert [jsonio.loads(r.value)["id"] for r in outputs] == ["e-0", "e-2"]
    [d] = dead
    h = headers_dict(d.headers)
    assert h["streamscore.error.stage"] == "publish"
    assert h["streamscore.error.class"] == "MessageTooLarge"
    assert "max_message_bytes = 65536" in h["streamscore.error.message"]
    assert h["streamscore.value.length"] == str(len(twice))
    assert result.scored == 2 and result.dead_letters == {"publish": 1}
    assert all(record_size(r) <= 65_536 for r in result.records)


def test_process_tombstone_stays_null_in_its_dead_letter_marked_by_a_header(
    register, model_store, demo_set
):
    register()
    result = BatchProcessor(DEST).process(
        records([None, jsonio.dumps(demo_set.event(1))]), serving(model_store)
    )
    [dead] = [r for r in result.records if r.topic == "dlq"]
    h = headers_dict(dead.headers)
    assert dead.value is None
    assert h["streamscore.value.null"] == "true"
    assert (h["streamscore.error.stage"], h["streamscore.error.class"]) == ("decode", "Tombstone")
    assert result.scored == 1
