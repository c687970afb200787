"""The fleet at a glance: the members of a group, read from their member-status records.

:func:`fleet_of` turns records (the newest per worker wins) into a :class:`Fleet`: each member
with its state (``ready``, ``waiting``, ``stopped``, or ``gone`` when its last record is older
than the group's session timeout: killed, or cut off) and the sum over the live ones.
:func:`read_fleet` reads the records of the last minutes from the control topic once
(``streamscore status``); :class:`FleetBook` keeps them as they arrive (a worker's status page,
fed by the control listener it already runs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from streamscore import jsonio
from streamscore.config import KafkaConfig
from streamscore.control import seek_to_time
from streamscore.exceptions import BrokerError
from streamscore.kafka_admin import client_kwargs, unreachable
from worker.fleet import MEMBER_STATUS

#: Members whose last record is older than this are left out altogether.
FORGET_AFTER_S = 600.0
LIVE = ("ready", "waiting")


@dataclass(frozen=True)
class Member:
    record: dict[str, Any]
    state: str  # ready | waiting | stopped | gone
    age_s: float

    @property
    def worker(self) -> str:
        return str(self.record.get("worker", "?"))


@dataclass(frozen=True)
class Fleet:
    group: str
    members: list[Member]
    gone_after_s: float

    @property
    def ready(self) -> list[Member]:
        return [m for m in self.members if m.state == "ready"]

    def total(self) -> dict[str, Any]:
        """Sums over the live members (p99: the worst of them)."""
        live = [m.record for m in self.members if m.state in LIVE]
        dead: dict[str, int] = {}
        for r in live:
            for stage, n in (r.get("dead_letters_by_stage") or {}).items():
                dead[stage] = dead.get(stage, 0) + int(n)
        p99s = [r["p99_ms"] for r in live if r.get("p99_ms") is not None]
        versions = sorted(
            {f"{alias} v{v}" for r in live for alias, v in (r.get("serving") or {}).items()}
        )
        return {
            "members": len(live),
            "ready": len(self.ready),
            "serving": versions,
            "partitions": sum(len(r.get("partitions") or []) for r in live),
            "events_per_s": round(sum(float(r.get("events_per_s") or 0) for r in live), 1),
            "p99_ms": max(p99s) if p99s else None,
            "lag": sum(sum((r.get("lag") or {}).values()) for r in live),
            "scored": sum(int(r.get("scored") or 0) for r in live),
            "dead_letters": sum(dead.values()),
            "dead_letters_by_stage": dead,
            "shadows": shadow_totals(live),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "gone_after_s": self.gone_after_s,
            "members": [
                {**m.record, "state": m.state, "age_s": round(m.age_s, 1)} for m in self.members
            ],
            "total": self.total(),
        }


def shadow_totals(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live members' shadows summed by version pair: events scored, agreement and mean
    probability difference or MAE weighted by each member's events, skipped by reason."""
    pairs: dict[tuple[Any, Any], dict[str, Any]] = {}
    for r in records:
        shadow = (r.get("candidates") or {}).get("shadow")
        if not shadow or shadow.get("version") is None:
            continue
        key = (shadow.get("production_version"), shadow["version"])
        total = pairs.setdefault(
            key,
            {
                "alias": shadow.get("alias"),
                "production_version": key[0],
                "shadow_version": key[1],
                "scored": 0,
                "skipped": {},
                "_sums": {"agreement": 0.0, "probability_diff": 0.0, "mae": 0.0},
                "_weights": {"agreement": 0, "probability_diff": 0, "mae": 0},
            },
        )
        n = int(shadow.get("scored") or 0)
        total["scored"] += n
        for reason, count in (shadow.get("skipped") or {}).items():
            total["skipped"][reason] = total["skipped"].get(reason, 0) + int(count)
        for name in ("agreement", "probability_diff", "mae"):
            if shadow.get(name) is not None and n:
                total["_sums"][name] += float(shadow[name]) * n
                total["_weights"][name] += n
    out = []
    for total in pairs.values():
        sums, weights = total.pop("_sums"), total.pop("_weights")
        for name in sums:
            total[name] = round(sums[name] / weights[name], 6) if weights[name] else None
        out.append(total)
    return out


def gone_after_s(kafka: KafkaConfig, interval_ms: int) -> float:
    """A member is gone when it has not reported for the session timeout (the broker moves
    its partitions then too), and never before it missed two records."""
    return max(kafka.session_timeout_ms / 1000, 2.5 * interval_ms / 1000)


def fleet_of(
    records: Iterable[dict[str, Any]], *, group: str, gone_after: float, now: float | None = None
) -> Fleet:
    """The newest record of each worker of ``group``, with its state."""
    now = time.time() if now is None else now
    newest: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("type") != MEMBER_STATUS or r.get("group") != group:
            continue
        worker = str(r.get("worker"))
        if worker not in newest or r["published_at"] >= newest[worker]["published_at"]:
            newest[worker] = r
    members = []
    for r in newest.values():
        age = max(now - float(r["published_at"]), 0.0)
        if age > FORGET_AFTER_S:
            continue
        state = str(r.get("state", "waiting"))
        if state in LIVE and age > gone_after:
            state = "gone"
        members.append(Member(r, state, age))
    members.sort(key=lambda m: (m.state not in LIVE, str(m.record.get("host")), m.worker))
    return Fleet(group, members, gone_after)


class FleetBook:
    """The newest member-status record per worker, fed as records arrive (thread-safe)."""

    def __init__(self, group: str, gone_after: float) -> None:
        self.group = group
        self.gone_after = gone_after
        self._records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        if record.get("type") != MEMBER_STATUS or record.get("group") != self.group:
            return
        with self._lock:
            self._records[str(record.get("worker"))] = record

    def fleet(self, *also: dict[str, Any]) -> Fleet:
        """The fleet; ``also`` adds fresher records (a worker's own, built just now)."""
        with self._lock:
            records = [*self._records.values(), *also]
        return fleet_of(records, group=self.group, gone_after=self.gone_after)


def read_fleet(
    kafka: KafkaConfig,
    *,
    interval_ms: int,
    since_s: float = 120.0,
    timeout_s: float = 10.0,
) -> Fleet:
    """Read the member-status records of the last ``since_s`` from the control topic, once."""
    since_s = max(since_s, 3 * gone_after_s(kafka, interval_ms))
    records = list(_records_since(kafka, kafka.control_topic, time.time() - since_s, timeout_s))
    return fleet_of(records, group=kafka.group_id, gone_after=gone_after_s(kafka, interval_ms))


def _records_since(
    kafka: KafkaConfig, topic: str, since: float, timeout_s: float
) -> Iterable[dict[str, Any]]:
    try:
        consumer = KafkaConsumer(
            **client_kwargs(kafka),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
    except Exception as exc:
        raise unreachable(kafka, exc, "read the fleet's status") from exc
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(tps)
        seek_to_time(consumer, tps, since)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=100).values():
                for record in batch:
                    if record.timestamp >= since * 1000:
                        out.extend(_decoded(record.value))
            if all(_caught_up(consumer, tp) for tp in tps):
                return out
        raise BrokerError(
            f"Kafka at {kafka.bootstrap_servers} did not deliver the status records of {topic} "
            f"within {timeout_s:g} s; check that the broker answers (streamscore broker status)"
        )
    finally:
        consumer.close()


def _caught_up(consumer: Any, tp: TopicPartition) -> bool:
    high = consumer.highwater(tp)
    return high is not None and consumer.position(tp) >= high


def _decoded(value: bytes | None) -> list[dict[str, Any]]:
    try:
        record = jsonio.loads(value or b"")
    except jsonio.JSONDecodeError:
        return []
    return [record] if isinstance(record, dict) else []
