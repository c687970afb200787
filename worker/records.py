"""Building the records the worker writes: prediction and dead-letter headers, event ids.

The contract these follow (header names, record shapes) is :mod:`streamscore.wire`.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from streamscore.wire import (
    H_ERROR_CLASS,
    H_ERROR_MESSAGE,
    H_GROUP,
    H_MODEL_NAME,
    H_MODEL_VERSION,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TIMESTAMP,
    H_SOURCE_TOPIC,
    H_STAGE,
    H_WORKER,
    Headers,
    InputRecord,
)


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


def fallback_headers(record: Any, stage: str, error_class: str, message: str) -> Headers:
    """Dead-letter headers of a record whose own fields cannot be written (never raises)."""

    def text(value: Any) -> bytes:
        try:
            return str(value).encode("utf-8", "replace")[:4000]
        except Exception:  # noqa: BLE001 - a value without a printable form
            return b"?"

    return [
        (H_SOURCE_TOPIC, text(getattr(record, "topic", "?"))),
        (H_SOURCE_PARTITION, text(getattr(record, "partition", "?"))),
        (H_SOURCE_OFFSET, text(getattr(record, "offset", "?"))),
        (H_STAGE, text(stage)),
        (H_ERROR_CLASS, text(error_class)),
        (H_ERROR_MESSAGE, text(message)),
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
