"""Property: whatever bytes or JSON arrive, every record of a batch ends as exactly one
prediction or one dead letter with a stage, and nothing raises out of the batch (no broker)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamscore import jsonio
from streamscore.wire import headers_dict
from tests.worker.test_processor import DEST, records
from worker.processor import BatchProcessor

STAGES = {"decode", "schema", "predict", "encode", "publish"}

#: Every JSON type, including numbers no float holds and floats that are not finite.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def deep(depth: int) -> bytes:
    return b'{"mean_radius": NaN, "x": ' + b"[" * depth + b"]" * depth + b"}"


@st.composite
def hostile_value(draw, names: list[str], good: dict) -> bytes | None:
    kind = draw(st.sampled_from(["bytes", "json", "event", "tokens", "deep", "dupes", "null"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "null":
        return None
    if kind == "json":
        return json.dumps(draw(json_values)).encode()  # NaN/Infinity tokens included
    if kind == "deep":
        return deep(draw(st.integers(min_value=500, max_value=50_000)))
    event = dict(good)
    for name in draw(st.lists(st.sampled_from([*names, "id", "label"]), max_size=4)):
        event[name] = draw(json_values)
    text = json.dumps(event)
    if kind == "tokens":
        text = text.replace("0.", draw(st.sampled_from(["NaN", "-Infinity", "1e999", "0."])), 1)
    if kind == "dupes":
        text = text[:-1] + ', "id": ' + json.dumps(draw(json_values)) + "}"
    return text.encode()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_record_ends_as_one_prediction_or_one_dead_letter(
    register_once, model_store, demo_set, data
):
    names = demo_set.names
    good = demo_set.event(0)
    values = data.draw(st.lists(hostile_value(names, good), min_size=1, max_size=12))
    values.insert(data.draw(st.integers(0, len(values))), jsonio.dumps(good))
    batch = records(values)
    result = BatchProcessor(DEST).process(batch, register_once)
    outcomes: dict[str, list[str]] = {}
    for record in result.records:
        h = headers_dict(record.headers)
        stage = h.get("streamscore.error.stage", "scored") if record.topic == "dlq" else "scored"
        assert record.topic in ("out", "dlq")
        assert stage in STAGES | {"scored"}
        outcomes.setdefault(h["streamscore.source.offset"], []).append(stage)
    assert sorted(outcomes, key=int) == [str(r.offset) for r in batch]
    assert all(len(v) == 1 for v in outcomes.values()), outcomes
    assert result.scored == sum(v == ["scored"] for v in outcomes.values()) >= 1
    assert sum(result.dead_letters.values()) == len(batch) - result.scored
