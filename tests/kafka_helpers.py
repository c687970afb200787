"""Helpers for broker tests: publish events, read a topic back, wait for conditions."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaProducer

from producer.results import Result, collect
from streamscore import jsonio
from streamscore.config import KafkaConfig
from streamscore.kafka_admin import client_kwargs


def produce(
    kafka: KafkaConfig,
    values: Iterable[bytes | dict[str, Any]],
    *,
    topic: str | None = None,
    key_field: str | None = "id",
) -> int:
    """Publish events (dicts are JSON-encoded, bytes sent as they are); returns acks."""
    producer = KafkaProducer(**client_kwargs(kafka), linger_ms=5)
    futures = []
    try:
        for value in values:
            key = None
            if isinstance(value, dict):
                if key_field and value.get(key_field) is not None:
                    key = str(value[key_field]).encode()
                payload = jsonio.dumps(value)
            else:
                payload = value
            futures.append(producer.send(topic or kafka.input_topic, payload, key=key))
        producer.flush()
        return sum(1 for f in futures if f.succeeded())
    finally:
        producer.close()


def read(kafka: KafkaConfig, topic: str, expected: int, timeout_s: float = 60) -> list[Result]:
    return collect(kafka, topic, expected=expected, timeout_s=timeout_s)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)
