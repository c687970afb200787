"""The wire contract: what streamscore writes to Kafka and what its readers may rely on.

Prediction (output topic, key = the input key)::

    {"id": "bc-0001", "prediction": 1, "probabilities": {"0": 0.03, "1": 0.97},
     "model": {"name": "breast-cancer", "version": 3}, "scored_at": 1764050000123}

``id`` is the event's id field, or ``"topic/partition/offset"`` when it has none.
Dead letter (dead-letter topic): the original key and value bytes, untouched, with headers;
a value too large to produce (``[worker] max_message_bytes``) is cut to its first bytes and
marked (``H_VALUE_TRUNCATED``, ``H_VALUE_LENGTH``), a tombstone stays null (``H_VALUE_NULL``);
the source headers say where to read the original in full.

Shadow predictions (``[kafka] shadow_topic``, no key; headers: the shadow's model name and
version), one record per batch (or part of one under ``max_message_bytes``), by column::

    {"model": {"name": "breast-cancer", "version": 4}, "scored_at": 1764050000123,
     "ids": ["bc-0001", "bc-0007"], "predictions": [1, 0],
     "classes": ["0", "1"], "probabilities": [[0.04, 0.96], [0.88, 0.12]],
     "production": {"model": {"name": "breast-cancer", "version": 3},
                    "predictions": [1, 1], "classes": ["0", "1"],
                    "probabilities": [[0.03, 0.97], [0.41, 0.59]]}}

(``classes`` and ``probabilities`` for classifiers only.) :func:`shadow_rows` turns one into a
prediction per event.

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


def shadow_rows(value: dict[str, Any]) -> list[dict[str, Any]]:
    """A shadow record (above) as one dict per event, shaped like a prediction, with
    production's beside it: ``{"id", "prediction", "probabilities"?, "model", "scored_at",
    "production": {"prediction", "probabilities"?, "model"}}``. A record of one event (as
    workers wrote them before the columns) is returned as it is. Raises ``ValueError``,
    ``KeyError`` or ``TypeError`` on a record of another shape."""
    if "ids" not in value:
        return [value]
    ours = value["production"]
    ids = value["ids"]
    theirs = _column_bodies(value, len(ids))
    paired = _column_bodies(ours, len(ids))
    at = value.get("scored_at")
    rows = []
    for ident, shadow, production in zip(ids, theirs, paired, strict=True):
        shadow["id"] = ident
        shadow["scored_at"] = at
        shadow["production"] = production
        rows.append(shadow)
    return rows


def _column_bodies(value: dict[str, Any], n: int) -> list[dict[str, Any]]:
    predictions = value["predictions"]
    if len(predictions) != n:
        raise ValueError(f"{n} ids but {len(predictions)} predictions")
    model = value["model"]
    probabilities = value.get("probabilities")
    if probabilities is None:
        return [{"prediction": p, "model": model} for p in predictions]
    if len(probabilities) != n:
        raise ValueError(f"{n} ids but {len(probabilities)} rows of probabilities")
    classes = [str(c) for c in value["classes"]]
    return [
        {"prediction": p, "probabilities": dict(zip(classes, row, strict=True)), "model": model}
        for p, row in zip(predictions, probabilities, strict=True)
    ]
