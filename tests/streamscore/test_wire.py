"""The wire contract: header names and record shapes that readers of our topics rely on.

The names are spelled out here on purpose: renaming one breaks every consumer of the output
and dead-letter topics, so it must show up as a failing test, not pass silently.
"""

from __future__ import annotations

from streamscore import wire


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
