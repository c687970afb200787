"""The fleet at a glance: member-status records on the control topic and ``streamscore status``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from app.cli import main
from streamscore import jsonio
from tests.conftest import PythonProcesses, worker_run
from tests.kafka_helpers import produce, read, wait_until
from worker.fleet import MEMBER_STATUS, RecentActivity
from worker.fleet_view import fleet_of, read_fleet
from worker.processor import BatchResult

pytestmark = pytest.mark.broker


@pytest.fixture
def spawn(python_processes: PythonProcesses) -> Callable[..., subprocess.Popen[bytes]]:
    def start(cfg, index: int) -> subprocess.Popen[bytes]:
        return python_processes.start(cfg, *worker_run(index))

    return start


def status_json(cfg) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["--config", str(cfg.source), "status", "--json"])
    return result.exit_code, jsonio.loads(result.output.strip().splitlines()[-1])


def by_state(fleet: dict) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for m in fleet["members"]:
        out.setdefault(m["state"], []).append(m["pid"])
    return {k: sorted(v) for k, v in out.items()}


def test_two_workers_report_themselves_and_a_killed_one_is_gone_within_the_session_timeout(
    config_factory, register, demo_set, spawn
):
    cfg = config_factory(worker={"status_interval_ms": 500})
    register()
    first, second = spawn(cfg, 0), spawn(cfg, 1)

    def both_ready() -> bool:
        fleet = read_fleet(cfg.kafka, interval_ms=500)
        return len(fleet.ready) == 2 and fleet.total()["partitions"] == cfg.kafka.partitions

    wait_until(both_ready, 120, "two ready members owning every partition")
    produce(cfg.kafka, [*[demo_set.event(i) for i in range(200)], b"not json"])
    read(cfg.kafka, cfg.kafka.output_topic, expected=200)

    def counted() -> bool:
        return read_fleet(cfg.kafka, interval_ms=500).total()["scored"] == 200

    wait_until(counted, 20, "the fleet to count 200 scored events")

    # The records themselves, as any process reads them from the control topic.
    on_topic = read(cfg.kafka, cfg.kafka.control_topic, expected=100_000, timeout_s=3)
    records = [r.value for r in on_topic if r.value.get("type") == MEMBER_STATUS]
    assert {r.key for r in on_topic} == {r["worker"].encode() for r in records}
    newest = {r["pid"]: r for r in sorted(records, key=lambda r: r["published_at"])}
    assert set(newest) == {first.pid, second.pid}
    for r in newest.values():
        assert r["group"] == cfg.kafka.group_id and r["serving"] == {"production": 1}
        assert r["model"] == "demo" and r["host"] and r["state"] == "ready"
        assert r["partitions"] and set(r["lag"]) == set(r["partitions"])
        assert r["p99_ms"] is None or r["p99_ms"] >= 0

    code, fleet = status_json(cfg)
    assert code == 0
    assert by_state(fleet) == {"ready": sorted([first.pid, second.pid])}
    total = fleet["total"]
    assert total["scored"] == 200 and total["dead_letters_by_stage"] == {"decode": 1}
    assert total["serving"] == ["production v1"] and total["partitions"] == cfg.kafka.partitions
    assert total["events_per_s"] > 0 and total["p99_ms"] is not None
    reasons = [d["reason"] for m in fleet["members"] for d in m["recent_dead_letters"]]
    assert len(reasons) == 1 and reasons[0]

    table = CliRunner().invoke(main, ["--config", str(cfg.source), "status"])
    assert table.exit_code == 0, table.output
    assert "2 of 2 members ready" in table.output and "serving production v1" in table.output

    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    session_s = cfg.kafka.session_timeout_ms / 1000

    def first_gone() -> bool:
        return by_state(status_json(cfg)[1]).get("gone") == [first.pid]

    wait_until(first_gone, session_s + 5, "the killed member shown as gone")
    assert time.monotonic() - killed_at <= session_s + 2.5  # the last record's age + one read

    def survivor_owns_all() -> bool:  # after the rebalance the killed member's death starts
        code, fleet = status_json(cfg)
        ready = by_state(fleet).get("ready") == [second.pid]
        return code == 0 and ready and fleet["total"]["partitions"] == cfg.kafka.partitions

    wait_until(survivor_owns_all, 30, "the survivor, ready with every partition")

    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    code, fleet = status_json(cfg)
    assert code == 1  # no member ready
    assert by_state(fleet) == {"stopped": [second.pid], "gone": [first.pid]}


def test_status_with_no_member_says_so_and_exits_1(config_factory):
    cfg = config_factory()
    result = CliRunner().invoke(main, ["--config", str(cfg.source), "status"])
    assert result.exit_code == 1
    assert "no member has reported" in result.output


# --------------------------------------------------------------------------- no broker


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Rec:
    def __init__(self, partition: int) -> None:
        self.topic, self.partition, self.offset, self.timestamp = "in", partition, 0, 0
        self.key, self.value = None, b"{}"


def schema_dead_letter(partition: int):
    from streamscore.wire import (
        H_SOURCE_OFFSET,
        H_SOURCE_PARTITION,
        H_SOURCE_TOPIC,
        H_STAGE,
        OutRecord,
    )

    headers = [
        (H_SOURCE_TOPIC, b"in"),
        (H_SOURCE_PARTITION, str(partition).encode()),
        (H_SOURCE_OFFSET, b"0"),
        (H_STAGE, b"schema"),
    ]
    return OutRecord("dlq", None, b"{}", headers)


def test_rate_and_latency_cover_the_last_minute_not_the_start():
    clock = Clock()
    activity = RecentActivity(clock=clock)
    slow = BatchResult(records=[], scored=100, timestamps_ms=[clock.now * 1000 - 800] * 100)
    activity.record_batch(
        [Rec(0)] * 100, slow, dead_letter_topic="dlq", model_label="m v1", input_topic="in"
    )
    assert activity.summary()["p99_ms"] == 800.0
    clock.now += 90  # a slow start, then a minute of quick batches
    for _ in range(10):
        clock.now += 1
        quick = BatchResult(records=[], scored=50, timestamps_ms=[clock.now * 1000 - 20] * 50)
        activity.record_batch(
            [Rec(1)] * 50, quick, dead_letter_topic="dlq", model_label="m v1", input_topic="in"
        )
    summary = activity.summary()
    assert summary["p99_ms"] == 20.0 and summary["events"] == 500
    assert summary["events_per_s"] == round(500 / 60, 1)


def test_most_events_of_a_partition_failing_the_schema_warn_loudly(caplog):
    activity = RecentActivity(clock=Clock())
    failing = BatchResult(records=[schema_dead_letter(2) for _ in range(25)])
    failing.dead_letters["schema"] = 25
    activity.record_batch(
        [Rec(2)] * 30, failing, dead_letter_topic="dlq", model_label="iris v1", input_topic="in"
    )
    assert activity.wrong_topic_partitions() == {"in[2]": {"events": 30, "schema_failed": 25}}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("WRONG TOPIC? 25 of the last 30 events")
    assert "iris v1" in warnings[0] and "[kafka] input_topic" in warnings[0]
    activity.record_batch(
        [Rec(2)] * 30, failing, dead_letter_topic="dlq", model_label="iris v1", input_topic="in"
    )
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1  # once a minute


def test_a_partition_with_a_few_bad_events_is_not_the_wrong_topic():
    activity = RecentActivity(clock=Clock())
    some = BatchResult(records=[schema_dead_letter(0) for _ in range(5)])
    some.dead_letters["schema"] = 5
    activity.record_batch(
        [Rec(0)] * 100, some, dead_letter_topic="dlq", model_label="m v1", input_topic="in"
    )
    assert activity.wrong_topic_partitions() == {}


def test_fleet_state_from_the_age_of_each_members_newest_record():
    def record(worker: str, at: float, state: str = "ready") -> dict:
        return {
            "type": MEMBER_STATUS,
            "group": "g",
            "worker": worker,
            "published_at": at,
            "state": state,
            "events_per_s": 10.0,
            "partitions": ["in[0]"],
            "pid": 1,
        }

    records = [
        record("a", 90.0),
        record("a", 99.0),
        record("b", 93.0),
        record("c", 98.0, "stopped"),
        record("x", 99.0) | {"group": "other"},
    ]
    fleet = fleet_of(records, group="g", gone_after=6.0, now=100.0)
    assert {m.worker: m.state for m in fleet.members} == {"a": "ready", "b": "gone", "c": "stopped"}
    assert fleet.total()["members"] == 1 and fleet.total()["events_per_s"] == 10.0
