"""What a worker keeps of the monitor's quality records for its status page (no broker)."""

from __future__ import annotations

import time

import pytest

from monitor.joinstate import Label, Prediction
from monitor.service import MonitorService
from streamscore.config import config_from_dict
from worker.live_quality import LiveQualityBook

HOUR_MS = 3_600_000
NOW = 1_765_000_000_000 // HOUR_MS * HOUR_MS + 1_800_000  # half past an hour


def window(version: int, start: int, at: int, accuracy: float, *, model: str = "demo") -> dict:
    return {
        "type": "window",
        "model": {"name": model, "version": version},
        "window_start_ms": start,
        "window_end_ms": start + HOUR_MS,
        "metrics": {"accuracy": accuracy, "labelled": 100, "predictions": 120},
        "cumulative": {"accuracy": accuracy, "labelled": 1000, "predictions": 1100},
        "at": at,
    }


def book() -> LiveQualityBook:
    held_out = {1: {"accuracy": 0.97, "log_loss": 0.08}, 2: {"accuracy": 0.04}}
    return LiveQualityBook("demo", lambda v: held_out[v], clock_ms=lambda: NOW)


def test_each_version_shows_held_out_next_to_its_newest_live_metrics():
    b = book()
    b.add(window(1, NOW - 2 * HOUR_MS, at=NOW - 5000, accuracy=0.95))
    b.add(window(1, NOW - HOUR_MS, at=NOW - 1000, accuracy=0.93))
    b.add(window(1, NOW - 2 * HOUR_MS, at=NOW - 9000, accuracy=0.10))  # older: ignored
    b.add(window(2, NOW - HOUR_MS, at=NOW - 2000, accuracy=0.03))
    shown = b.to_dict()["versions"]
    assert set(shown) == {"1", "2"}
    one = shown["1"]
    assert one["held_out"] == {"accuracy": 0.97, "log_loss": 0.08}
    assert one["live"]["accuracy"] == 0.93 and one["updated_ms"] == NOW - 1000
    assert one["window"]["start_ms"] == NOW - HOUR_MS  # the newest closed window
    assert one["window"]["metrics"]["accuracy"] == 0.93
    assert shown["2"]["held_out"] == {"accuracy": 0.04} and shown["2"]["live"]["accuracy"] == 0.03


def test_the_window_shown_is_the_newest_closed_one():
    b = book()
    closed_start = NOW - NOW % HOUR_MS - HOUR_MS  # ended at the top of this hour
    b.add(window(1, closed_start, at=NOW - 3000, accuracy=0.91))
    b.add(window(1, NOW - NOW % HOUR_MS, at=NOW - 1000, accuracy=0.50))  # still open
    w = b.to_dict()["versions"]["1"]["window"]
    assert (w["start_ms"], w["metrics"]["accuracy"]) == (closed_start, 0.91)


def test_records_of_another_model_or_of_no_known_shape_are_ignored():
    b = book()
    b.add(window(1, NOW - 2 * HOUR_MS, at=NOW, accuracy=0.9, model="fraud"))
    b.add({"type": "window", "model": {"name": "demo"}})  # no version
    b.add({"type": "member-status", "worker": "w"})
    b.add({"type": "window", "model": "demo", "window_start_ms": "x"})
    assert b.to_dict() == {"versions": {}, "last_decision": None, "candidates": {}}


def test_the_newest_decision_is_kept():
    b = book()
    b.add({"type": "decision", "action": "hold", "version": 2, "reason": "too few", "at": 5})
    b.add({"type": "decision", "action": "rollback", "version": 2, "target": 1, "at": 9})
    b.add({"type": "decision", "action": "hold", "version": 2, "reason": "older", "at": 7})
    assert b.to_dict()["last_decision"]["action"] == "rollback"


def test_a_version_the_store_cannot_show_has_no_held_out_metrics():
    b = LiveQualityBook("demo", lambda v: {}[v], clock_ms=lambda: NOW)
    b.add(window(9, NOW - 2 * HOUR_MS, at=NOW, accuracy=0.9))
    assert b.to_dict()["versions"]["9"]["held_out"] == {}


def test_the_book_reads_the_records_the_monitor_publishes(tmp_path):
    cfg = config_from_dict(
        {"model_store": {"root": "models", "model_name": "demo"}},
        environ={},
        base_dir=tmp_path,
    )
    service = MonitorService(cfg)
    try:
        now = int(time.time() * 1000)
        at = now - 2 * HOUR_MS  # a closed window of the default 1-hour windows
        service.state.apply(
            [
                Prediction(f"p-{i}", 3, at, i % 2, {"0": 1.0 - i % 2, "1": float(i % 2)})
                for i in range(40)
            ],
            [Label(f"p-{i}", 1, at + 1000) for i in range(40)],
            {},
        )
        ((_, start, _),) = service.state.windows(3)
        record = service.quality_record(3, start) | {"at": now}
    finally:
        service.state.close()
    b = LiveQualityBook("demo", lambda v: {"accuracy": 0.9}, clock_ms=lambda: now)
    b.add(record)
    shown = b.to_dict()["versions"]["3"]
    assert shown["live"]["labelled"] == 40 and shown["live"]["accuracy"] == pytest.approx(0.5)
    assert shown["window"]["start_ms"] == start
    assert shown["window"]["metrics"]["accuracy"] == pytest.approx(0.5)


def candidate(role: str, version: int, at: int, accuracy: float, production: float) -> dict:
    return {
        "type": "candidate",
        "role": role,
        "alias": "candidate",
        "model": {"name": "demo", "version": version},
        "production_version": 1,
        "cumulative": {"accuracy": accuracy, "labelled": 200},
        "production_cumulative": {"accuracy": production, "labelled": 200},
        "at": at,
    }


def test_a_candidate_shows_its_live_metrics_next_to_productions_newest_first():
    b = book()
    b.add(candidate("shadow", 2, at=NOW - 1000, accuracy=0.96, production=0.91))
    b.add(candidate("shadow", 2, at=NOW - 5000, accuracy=0.10, production=0.10))  # older
    b.add({**candidate("canary", 3, at=NOW, accuracy=0.5, production=0.9), "model": {}})  # bad
    b.add(
        {**candidate("canary", 3, at=NOW, accuracy=0.5, production=0.9), "production_version": "x"}
    )
    shown = b.to_dict()["candidates"]
    assert shown == {
        "shadow": {
            "alias": "candidate",
            "version": 2,
            "production_version": 1,
            "live": {"accuracy": 0.96, "labelled": 200},
            "production_live": {"accuracy": 0.91, "labelled": 200},
            "updated_ms": NOW - 1000,
        }
    }
