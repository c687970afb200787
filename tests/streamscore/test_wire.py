"""The wire contract: header names and record shapes that readers of our topics rely on.

The names are spelled out here on purpose: renaming one breaks every consumer of the output
and dead-letter topics, so it must show up as a failing test, not pass silently.
"""

from __future__ import annotations

import pytest

from streamscore import wire
from streamscore.wire import shadow_rows


def test_prediction_headers_keep_their_names():
    assert (
        wire.H_SOURCE_TOPIC,
        wire.H_SOURCE_PARTITION,
        wire.H_SOURCE_OFFSET,
        wire.H_MODEL_NAME,
        wire.H_MODEL_VERSION,
    ) == (
        "streamscore.source.topic",
        "streamscore.source.partition",
        "streamscore.source.offset",
        "streamscore.model.name",
        "streamscore.model.version",
    )


def test_dead_letter_headers_keep_their_names():
    assert (
        wire.H_STAGE,
        wire.H_ERROR_CLASS,
        wire.H_ERROR_MESSAGE,
        wire.H_SOURCE_TIMESTAMP,
        wire.H_GROUP,
        wire.H_WORKER,
    ) == (
        "streamscore.error.stage",
        "streamscore.error.class",
        "streamscore.error.message",
        "streamscore.source.timestamp",
        "streamscore.group",
        "streamscore.worker",
    )


def test_out_record_lets_the_partitioner_choose_by_default():
    record = wire.OutRecord("t", b"k", b"v", [(wire.H_GROUP, b"g")])
    assert record.partition is None
    assert record._asdict() == {
        "topic": "t",
        "key": b"k",
        "value": b"v",
        "headers": [("streamscore.group", b"g")],
        "partition": None,
    }


def test_headers_dict_decodes_bytes_and_tolerates_none_and_bad_utf8():
    assert wire.headers_dict(None) == {}
    assert wire.headers_dict([("a", b"1"), ("b", b"\xff"), ("c", 7)]) == {
        "a": "1",
        "b": "\ufffd",
        "c": "7",
    }


# --------------------------------------------------------------------------- shadow records


def _side(version: int, predictions: list, probabilities: list | None) -> dict:
    side = {"model": {"name": "m", "version": version}, "predictions": predictions}
    if probabilities is not None:
        side |= {"classes": [0, 1], "probabilities": probabilities}
    return side


def test_shadow_rows_give_one_prediction_per_event_with_productions_beside_it():
    value = {
        **_side(2, [1, 0], [[0.1, 0.9], [0.8, 0.2]]),
        "scored_at": 7,
        "ids": ["a", "b"],
        "production": _side(1, [1, 1], [[0.3, 0.7], [0.4, 0.6]]),
    }
    assert shadow_rows(value) == [
        {
            "prediction": 1,
            "probabilities": {"0": 0.1, "1": 0.9},
            "model": {"name": "m", "version": 2},
            "id": "a",
            "scored_at": 7,
            "production": {
                "prediction": 1,
                "probabilities": {"0": 0.3, "1": 0.7},
                "model": {"name": "m", "version": 1},
            },
        },
        {
            "prediction": 0,
            "probabilities": {"0": 0.8, "1": 0.2},
            "model": {"name": "m", "version": 2},
            "id": "b",
            "scored_at": 7,
            "production": {
                "prediction": 1,
                "probabilities": {"0": 0.4, "1": 0.6},
                "model": {"name": "m", "version": 1},
            },
        },
    ]


def test_shadow_rows_of_a_regressor_have_no_probabilities():
    value = {**_side(2, [1.5], None), "ids": [9], "production": _side(1, [1.25], None)}
    (row,) = shadow_rows(value)
    assert row["prediction"] == 1.5 and row["production"]["prediction"] == 1.25
    assert "probabilities" not in row and "probabilities" not in row["production"]


def test_a_shadow_record_of_one_event_is_returned_as_it_is():
    one = {"id": "a", "prediction": 1, "model": {"name": "m", "version": 2}, "production": {}}
    assert shadow_rows(one) == [one]


@pytest.mark.parametrize(
    "broken",
    [
        {"ids": ["a", "b"], **_side(2, [1], None), "production": _side(1, [1, 1], None)},
        {"ids": ["a"], **_side(2, [1], [[0.5, 0.5]]), "production": _side(1, [1], [])},
        {"ids": ["a"], **_side(2, [1], None)},
    ],
    ids=["predictions-short", "probabilities-short", "no-production"],
)
def test_a_shadow_record_whose_columns_disagree_is_refused(broken):
    with pytest.raises((ValueError, KeyError)):
        shadow_rows(broken)
