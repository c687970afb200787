"""The wire contract: prediction records, dead letters, and their header names.

Prediction (output topic, key = the input key)::

    {"id": "bc-0001", "prediction": 1, "probabilities": {"0": 0.03, "1": 0.97},
     "model": {"name": "breast-cancer", "version": 3}, "scored_at": 1764050000123}

``id`` is the event's id field, or ``"topic/partition/offset"`` when it has none.
Dead letter (dead-letter topic): the original key and value bytes, untouched, with headers.
"""

from __future__ import annotations

import functools
import time
from typing import Any, NamedTuple, Protocol

# Headers on every prediction.
H_SOURCE_TOPIC = "streamscore.source.topic"
H_SOURCE_PARTITION = "streamscore.source.partition"
H_SOURCE_OFFSET = "streamscore.source.offset"
H_MODEL_NAME = "streamscore.model.name"
H_MODEL_VERSION = "streamscore.model.version"
# Extra headers on every dead letter.
H_STAGE = "streamscore.error.stage"  # decode | schema | predict
H_ERROR_CLASS = "streamscore.error.class"
H_ERROR_MESSAGE = "streamscore.error.message"
H_SOURCE_TIMESTAMP = "streamscore.source.timestamp"  # the input's Kafka timestamp, epoch ms
H_GROUP = "streamscore.group"
H_WORKER = "streamscore.worker"

STAGES = ("decode", "schema", "predict")

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
    value: bytes
    headers: Headers
    partition: int | None = None


@functools.lru_cache(maxsize=4096)
def _encoded(value: str | int) -> bytes:
    """Header bytes of values that repeat across events (topic, partition, model)."""
    return str(value).encode()


def source_headers(record: InputRecord, model_name: str, model_version: str) -> Headers:
    return [
        (H_SOURCE_TOPIC, _encoded(record.topic)),
        (H_SOURCE_PARTITION, _encoded(record.partition)),
        (H_SOURCE_OFFSET, str(record.offset).encode()),
        (H_MODEL_NAME, _encoded(model_name)),
        (H_MODEL_VERSION, _encoded(model_version)),
    ]


class SourceHeaders:
    """Builds prediction headers for one batch: the bytes that repeat (topic, partition,
    model) are encoded once per partition and reused, only the offset is per event."""

    def __init__(self, model_name: str, model_version: str) -> None:
        self._name = (H_MODEL_NAME, _encoded(model_name))
        self._version = (H_MODEL_VERSION, _encoded(model_version))
        self._by_partition: dict[tuple[str, int], tuple[tuple[str, bytes], ...]] = {}

    def __call__(self, record: InputRecord) -> Headers:
        key = (record.topic, record.partition)
        fixed = self._by_partition.get(key)
        if fixed is None:
            fixed = self._by_partition[key] = (
                (H_SOURCE_TOPIC, _encoded(record.topic)),
                (H_SOURCE_PARTITION, _encoded(record.partition)),
            )
        return [
            fixed[0],
            fixed[1],
            (H_SOURCE_OFFSET, str(record.offset).encode()),
            self._name,
            self._version,
        ]


def dead_letter_headers(
    record: InputRecord,
    *,
    stage: str,
    error_class: str,
    message: str,
    group: str,
    worker_id: str,
    model_name: str,
    model_version: str,
) -> Headers:
    return [
        *source_headers(record, model_name, model_version),
        (H_STAGE, stage.encode()),
        (H_ERROR_CLASS, error_class.encode()),
        (H_ERROR_MESSAGE, message.encode("utf-8", "replace")[:4000]),
        (H_SOURCE_TIMESTAMP, str(record.timestamp).encode()),
        (H_GROUP, group.encode()),
        (H_WORKER, worker_id.encode()),
    ]


def event_id(event: Any, id_field: str, record: InputRecord) -> Any:
    """The event's id, or ``topic/partition/offset`` when it has none."""
    if isinstance(event, dict):
        value = event.get(id_field)
        if value is not None:
            return value
    return f"{record.topic}/{record.partition}/{record.offset}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def headers_dict(headers: Any) -> dict[str, str]:
    """Headers of a consumed record as ``{name: text}`` (for tail and tests)."""
    out: dict[str, str] = {}
    for name, value in headers or ():
        out[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return out
