"""Publish events to the input topic, optionally at a fixed rate, counting acks and failures."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

from streamscore import jsonio
from streamscore.config import KafkaConfig
from streamscore.kafka_admin import client_kwargs


@dataclass
class PublishReport:
    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class Publisher:
    def __init__(self, kafka: KafkaConfig, *, topic: str | None = None, linger_ms: int = 5) -> None:
        self.topic = topic or kafka.input_topic
        self._report = PublishReport()
        self._started = time.perf_counter()
        self.producer = KafkaProducer(
            **client_kwargs(kafka), acks="all", linger_ms=linger_ms, batch_size=262_144
        )

    def publish(
        self,
        events: Iterable[dict[str, Any]],
        *,
        key_field: str | None = None,
        rate: float | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> PublishReport:
        """Send every event; wait for all acks. ``rate`` = events per second (None: as fast).

        Interrupted (Ctrl-C on an endless ``events``), :meth:`finish` flushes what was sent and
        returns its report."""
        report = self._report = PublishReport()
        started = self._started = time.perf_counter()

        def ok(_metadata: Any) -> None:
            report.sent += 1

        def failed(exc: BaseException) -> None:
            report.failed += 1
            if not report.first_error:
                report.first_error = f"{type(exc).__name__}: {exc}"

        interval = 1.0 / rate if rate else 0.0
        for count, event in enumerate(events, start=1):
            if interval:
                due = started + (count - 1) * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            key = None
            if key_field and event.get(key_field) is not None:
                key = str(event[key_field]).encode()
            future = self.producer.send(self.topic, value=jsonio.dumps(event), key=key)
            future.add_callback(ok)
            future.add_errback(failed)
            if on_progress is not None:
                on_progress(1)
        return self.finish()

    def finish(self) -> PublishReport:
        """Wait for the acks of everything sent; the report of the last :meth:`publish`."""
        self.producer.flush()
        self._report.seconds = time.perf_counter() - self._started
        return self._report

    def send_raw(
        self, values: Iterable[bytes], *, keys: Iterable[bytes | None] | None = None
    ) -> int:
        """Send pre-encoded values (any bytes, e.g. to test dead letters). Returns acks."""
        futures = []
        key_iter = iter(keys) if keys is not None else None
        for value in values:
            key = next(key_iter) if key_iter is not None else None
            futures.append(self.producer.send(self.topic, value=value, key=key))
        self.producer.flush()
        return sum(1 for f in futures if f.succeeded())

    def close(self) -> None:
        self.producer.close(timeout=5)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
