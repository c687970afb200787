"""The wire contract: what streamscore writes to Kafka and what its readers may rely on.

Prediction (output topic, key = the input key)::

    {"id": "bc-0001", "prediction": 1, "probabilities": {"0": 0.03, "1": 0.97},
     "model": {"name": "breast-cancer", "version": 3}, "scored_at": 1764050000123}

``id`` is the event's id field, or ``"topic/partition/offset"`` when it has none.
Dead letter (dead-letter topic): the original key and value bytes, untouched, with headers;
a value too large to produce (``[worker] max_message_bytes``) is cut to its first bytes and
marked (``H_VALUE_TRUNCATED``, ``H_VALUE_LENGTH``), a tombstone stays null (``H_VALUE_NULL``);
the source headers say where to read the original in full.

Header names live here and nowhere else: the worker writes them, ``producer`` (tail, collect),
the demo and the benchmark read them.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

# Headers on every prediction.
H_SOURCE_TOPIC = "streamscore.source.topic"
H_SOURCE_PARTITION = "streamscore.source.partition"
H_SOURCE_OFFSET = "streamscore.source.offset"
H_MODEL_NAME = "streamscore.model.name"
H_MODEL_VERSION = "streamscore.model.version"
# Extra headers on every dead letter.
H_STAGE = "streamscore.error.stage"  # decode | schema | predict | encode | publish
H_ERROR_CLASS = "streamscore.error.class"
H_ERROR_MESSAGE = "streamscore.error.message"
H_SOURCE_TIMESTAMP = "streamscore.source.timestamp"  # the input's Kafka timestamp, epoch ms
H_GROUP = "streamscore.group"
H_WORKER = "streamscore.worker"
# On a dead letter whose value is not the original one in full (see worker/sizes.py).
H_VALUE_LENGTH = "streamscore.value.length"  # the original value's length in bytes
H_VALUE_TRUNCATED = "streamscore.value.truncated"  # "true": the value is its first bytes only
H_VALUE_NULL = "streamscore.value.null"  # "true": the original was a tombstone (null value)

Headers = list[tuple[str, bytes]]


class InputRecord(Protocol):
    """What the worker needs of a consumed record (kafka-python's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class OutRecord(NamedTuple):
    """A record to publish. ``partition`` None lets the client's partitioner hash the key."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (only a dead letter of one)
    headers: Headers
    partition: int | None = None


def headers_dict(headers: Any) -> dict[str, str]:
    """Headers of a consumed record as ``{name: text}`` (for tail and tests)."""
    out: dict[str, str] = {}
    for name, value in headers or ():
        out[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return out
