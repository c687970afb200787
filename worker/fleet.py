"""Members report themselves: what one worker did in the last minute, published for the fleet.

Every ``[worker] status_interval_ms`` a worker publishes a **member-status record** to its
control topic (key = worker id): who it is (worker id, host, pid, group), what it serves (model
and version per alias), which partitions it owns, events/s and end-to-end p50/p99 over the last
minute, lag per partition, dead letters by stage and the last few with their reasons. Any
process reads the fleet from that topic (:mod:`worker.fleet_view`, ``streamscore status``)
without reaching the members over HTTP. A member that stops cleanly says so in a last record;
one that is killed simply stops publishing and is shown as gone.

:class:`RecentActivity` also watches for a worker on the wrong topic: when most events of a
partition fail the model's schema, it logs a loud warning naming the topic and the model.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafka import KafkaProducer

from streamscore import jsonio, wire
from streamscore.config import KafkaConfig
from streamscore.kafka_admin import client_kwargs

if TYPE_CHECKING:
    from worker.metrics import WorkerMetrics
    from worker.processor import BatchResult, ServingModel
    from worker.status import WorkerStatus

log = logging.getLogger(__name__)

#: ``type`` of a member-status record on the control topic (beside ``alias-moved`` notices).
MEMBER_STATUS = "member-status"
WINDOW_S = 60
RECENT_DEAD_LETTERS = 20
#: Latencies kept per second of the window (a stride sample under heavy load).
LATENCY_SAMPLES_PER_S = 500
#: A partition is on the wrong topic when, over the window, at least this many events came
#: and more than this share of them failed the schema.
WRONG_TOPIC_MIN_EVENTS = 20
WRONG_TOPIC_SHARE = 0.5


@dataclass
class _Second:
    at: int
    events: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    by_partition: Counter[str] = field(default_factory=Counter)
    schema_failed: Counter[str] = field(default_factory=Counter)


class RecentActivity:
    """The last minute of one worker: rate, latency, dead letters, swaps, schema failures."""

    def __init__(self, *, window_s: int = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.clock = clock
        self.started_at = clock()
        self._seconds: deque[_Second] = deque()
        self._lock = threading.Lock()
        self.dead_letters: deque[dict[str, Any]] = deque(maxlen=RECENT_DEAD_LETTERS)
        self.swaps: deque[dict[str, Any]] = deque(maxlen=20)
        self._warned_at: dict[str, float] = {}

    # ------------------------------------------------------------------ feeding

    def record_batch(
        self,
        records: Sequence[wire.InputRecord],
        result: BatchResult,
        *,
        dead_letter_topic: str,
        model_label: str,
        input_topic: str,
    ) -> None:
        """One handled batch (called on the scoring thread, after the commit)."""
        now = self.clock()
        latencies = [max(now * 1000 - ts, 0.0) for ts in result.timestamps_ms]
        if len(latencies) > LATENCY_SAMPLES_PER_S:
            stride = len(latencies) // LATENCY_SAMPLES_PER_S + 1
            latencies = latencies[::stride]
        with self._lock:
            second = self._second(int(now))
            second.events += len(records)
            second.latencies_ms.extend(latencies)
            for record in records:
                second.by_partition[f"{record.topic}[{record.partition}]"] += 1
            if result.dead_letters:
                self._note_dead_letters(result, dead_letter_topic, second, now)
        if result.dead_letters.get("schema"):
            self._warn_wrong_topic(model_label, input_topic)

    def record_swap(self, old: ServingModel | None, new: ServingModel) -> None:
        with self._lock:
            self.swaps.append(
                {
                    "at": self.clock(),
                    "from": old.version if old is not None else None,
                    "to": new.version,
                    "model": new.name,
                }
            )

    def _second(self, at: int) -> _Second:
        if not self._seconds or self._seconds[-1].at != at:
            self._seconds.append(_Second(at))
        while self._seconds and self._seconds[0].at <= at - self.window_s:
            self._seconds.popleft()
        return self._seconds[-1]

    def _note_dead_letters(
        self, result: BatchResult, topic: str, second: _Second, now: float
    ) -> None:
        for out in result.records:
            if out.topic != topic:
                continue
            headers = dict(out.headers)
            stage = headers.get(wire.H_STAGE, b"").decode()
            where = (
                f"{headers.get(wire.H_SOURCE_TOPIC, b'').decode()}"
                f"[{headers.get(wire.H_SOURCE_PARTITION, b'').decode()}]"
            )
            if stage == "schema":
                second.schema_failed[where] += 1
            self.dead_letters.append(
                {
                    "at": now,
                    "stage": stage,
                    "error_class": headers.get(wire.H_ERROR_CLASS, b"").decode(),
                    "reason": headers.get(wire.H_ERROR_MESSAGE, b"").decode("utf-8", "replace"),
                    "source": f"{where}@{headers.get(wire.H_SOURCE_OFFSET, b'').decode()}",
                }
            )

    # ------------------------------------------------------------------ reading

    def summary(self) -> dict[str, Any]:
        """Events/s and latency over the last minute (or since start, if younger)."""
        now = self.clock()
        with self._lock:
            recent = [s for s in self._seconds if s.at > now - self.window_s]
            events = sum(s.events for s in recent)
            latencies = sorted(v for s in recent for v in s.latencies_ms)
            dead = list(self.dead_letters)
            swaps = list(self.swaps)
        span = max(min(float(self.window_s), now - self.started_at), 1.0)
        return {
            "window_s": self.window_s,
            "events_per_s": round(events / span, 1),
            "events": events,
            "p50_ms": _quantile(latencies, 0.5),
            "p99_ms": _quantile(latencies, 0.99),
            "recent_dead_letters": dead,
            "swaps": swaps,
            "wrong_topic": self.wrong_topic_partitions(),
        }

    def wrong_topic_partitions(self) -> dict[str, dict[str, int]]:
        """Partitions where most events of the window failed the schema."""
        now = self.clock()
        events: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        with self._lock:
            for s in self._seconds:
                if s.at > now - self.window_s:
                    events.update(s.by_partition)
                    failed.update(s.schema_failed)
        return {
            where: {"events": events[where], "schema_failed": failed[where]}
            for where in events
            if events[where] >= WRONG_TOPIC_MIN_EVENTS
            and failed[where] > WRONG_TOPIC_SHARE * events[where]
        }

    def _warn_wrong_topic(self, model_label: str, input_topic: str) -> None:
        now = self.clock()
        for where, counts in self.wrong_topic_partitions().items():
            if now - self._warned_at.get(where, -1e9) < self.window_s:
                continue
            self._warned_at[where] = now
            log.warning(
                "WRONG TOPIC? %d of the last %d events of %s failed the schema of %s: this "
                "worker may be reading another model's events. Check [kafka] input_topic "
                "(%s) and [model_store] model_name; the dead letters say what is missing "
                "(streamscore tail --dead-letters)",
                counts["schema_failed"],
                counts["events"],
                where,
                model_label,
                input_topic,
            )


def _quantile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(int(q * len(sorted_values)), len(sorted_values) - 1)
    return round(sorted_values[index], 1)


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class MemberIdentity:
    worker_id: str
    group: str
    index: int
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


def member_record(
    identity: MemberIdentity,
    status: WorkerStatus,
    activity: RecentActivity,
    metrics: WorkerMetrics,
    *,
    ready: bool,
    interval_ms: int,
    state: str | None = None,
) -> dict[str, Any]:
    """One member-status record (JSON-ready). ``state``: ready | waiting | stopped."""
    model = status.model
    serving = {model["alias"]: model["version"]} if model else {}
    return {
        "type": MEMBER_STATUS,
        "worker": identity.worker_id,
        "group": identity.group,
        "index": identity.index,
        "host": identity.host,
        "pid": identity.pid,
        "state": state or ("ready" if ready else "waiting"),
        "waiting_reason": status.waiting_reason,
        "started_at": status.started_at,
        "published_at": time.time(),
        "interval_ms": interval_ms,
        "model": model["name"] if model else None,
        "serving": serving,
        "partitions": [f"{t}[{p}]" for t, p in status.assigned],
        "scored": status.scored,
        "dead_letters": status.dead_letters,
        "dead_letters_by_stage": _dead_by_stage(metrics),
        "lag": _lag(metrics),
        **activity.summary(),
    }


def _dead_by_stage(metrics: WorkerMetrics) -> dict[str, int]:
    out: Counter[str] = Counter()
    for family in metrics.dead_letters.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[sample.labels["stage"]] += int(sample.value)
    return dict(out)


def _lag(metrics: WorkerMetrics) -> dict[str, int]:
    out: dict[str, int] = {}
    for family in metrics.consumer_lag.collect():
        for sample in family.samples:
            out[f"{sample.labels['topic']}[{sample.labels['partition']}]"] = int(sample.value)
    return out


# --------------------------------------------------------------------------- publishing


class StatusPublisher:
    """Publishes ``make_record()`` to the control topic every ``interval_ms`` in a thread.

    Best effort: a record that cannot be sent is logged (once a minute) and the next one tried;
    scoring never waits for it. ``stop()`` publishes a last record with state ``stopped``.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        worker_id: str,
        make_record: Callable[[str | None], dict[str, Any]],
        *,
        interval_ms: int,
    ) -> None:
        self.kafka = kafka
        self.key = worker_id.encode()
        self.make_record = make_record
        self.interval_s = interval_ms / 1000
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-publisher", daemon=True)
        self._producer: Any = None
        self._failed_at = -1e9
        self.published = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._send(self.make_record("stopped"), wait=True)
        if self._producer is not None:
            self._producer.close(timeout=2)
            self._producer = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._send(self.make_record(None), wait=False)

    def _send(self, record: dict[str, Any], *, wait: bool) -> None:
        try:
            if self._producer is None:
                self._producer = KafkaProducer(
                    **client_kwargs(self.kafka), acks="all", linger_ms=0, max_block_ms=2000
                )
            future = self._producer.send(
                self.kafka.control_topic, key=self.key, value=jsonio.dumps(record)
            )
            if wait:
                future.get(timeout=3)
            self.published += 1
        except Exception as exc:  # noqa: BLE001 - reporting must never stop scoring
            now = time.monotonic()
            if now - self._failed_at > 60:
                self._failed_at = now
                log.warning(
                    "member status not published to %s (%s); the fleet view misses this "
                    "worker until the broker answers",
                    self.kafka.control_topic,
                    exc,
                )
