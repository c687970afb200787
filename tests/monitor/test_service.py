"""``streamscore monitor`` on the real broker: the join, live metrics per version across a swap,
the automatic rollback, and a kill -9 mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from model_store import ModelStore
from streamscore.exceptions import ModelStoreError
from streamscore.kafka_admin import ensure_topics
from tests.kafka_helpers import produce, produce_json, read, wait_until
from tests.monitor.conftest import event, label, read_state, register
from worker.service import ScoringWorker

pytestmark = pytest.mark.broker


def _prediction(i: int, version: int, p1: float, at_ms: int) -> dict[str, Any]:
    return {
        "id": f"p-{i}",
        "prediction": int(p1 >= 0.5),
        "probabilities": {"0": round(1 - p1, 4), "1": p1},
        "model": {"name": "demo", "version": version},
        "scored_at": at_ms,
    }


def _versions(service: Any) -> dict[str, Any]:
    return service.snapshot().get("versions", {})


def _bad_version_promoted(cfg: Any, cancer: Any) -> tuple[ModelStore, Any, Any]:
    """A good v1, then a bad v2 promoted over it (the labels topic made): store, v1, v2."""
    ensure_topics(cfg.kafka, [cfg.kafka.labels_topic])
    store = ModelStore.from_config(cfg)
    first = register(store, cancer)
    store.promote(first.version)
    second = register(store, cancer, bad=True)
    store.promote(second.version)
    return store, first, second


def _all_wrong_over_ten_closed_windows(k: Any, version: int) -> None:
    """400 predictions of ``version`` (class 1 at 0.9) over ten closed 1-second windows, 40
    per window, and a label 0 for each: live accuracy 0."""
    start = int(time.time() * 1000) // 1000 * 1000 - 10_000
    predictions = [_prediction(i, version, 0.9, start + i * 25) for i in range(400)]
    produce_json(k, k.output_topic, predictions, key_field="id")
    produce_json(k, k.labels_topic, [{"id": f"p-{i}", "label": 0} for i in range(400)])


def test_monitor_joins_labels_before_and_after_predictions(monitor_config, run_monitor):
    cfg = monitor_config()
    k = cfg.kafka
    ensure_topics(k, [k.labels_topic])
    now = int(time.time() * 1000)
    service = run_monitor(cfg)
    early = [{"id": f"p-{i}", "label": 1} for i in range(50)]  # labels before predictions
    produce_json(k, k.labels_topic, early, key_field="id")
    wait_until(lambda: service.snapshot().get("pending_labels") == 50, 30, "50 waiting labels")
    predictions = [_prediction(i, 1, 0.9 if i % 4 else 0.2, now) for i in range(100)]
    produce_json(k, k.output_topic, predictions, key_field="id")
    late = [{"id": f"p-{i}", "label": 1} for i in range(50, 100)]
    duplicates = [{"id": f"p-{i}", "label": 0} for i in range(10)]
    unknown = [{"id": f"nobody-{i}", "label": 1} for i in range(5)]
    produce_json(k, k.labels_topic, late + duplicates + unknown, key_field="id")
    wait_until(
        lambda: (
            _versions(service).get("1", {}).get("labelled") == 100
            and service.snapshot()["counters"]["duplicate_labels"] == 10
        ),
        30,
        "100 joined labels and 10 duplicates",
    )
    live = _versions(service)["1"]
    assert live["accuracy"] == pytest.approx(0.75)  # every fourth predicted 0, all labels 1
    assert live["coverage"] == 1.0 and live["predictions"] == 100
    counters = service.snapshot()["counters"]
    assert counters["waiting_labels_joined"] == 50 and counters["joined"] == 100
    assert service.snapshot()["pending_labels"] == 5  # the unknown ids wait out their hour
    records = read(k, k.quality_topic, expected=1, timeout_s=10)
    windows = [r.value for r in records if r.value["type"] == "window"]
    assert windows and windows[-1]["model"] == {"name": "demo", "version": 1}
    assert windows[-1]["cumulative"]["labelled"] == 100


def test_monitor_computes_fleet_drift_from_the_workers_minute_counts(
    monitor_config, run_monitor, cancer
):
    import urllib.request

    import numpy as np

    from monitor.drift import BucketCounter, MinuteCounts
    from monitor.profile import build_profile

    names, X, _ = cancer
    cfg = monitor_config()
    k = cfg.kafka
    ensure_topics(k, [k.monitoring_topic])
    specs = [type("Spec", (), {"name": n, "dtype": "float"})() for n in names]
    profile = build_profile({n: X[:, i] for i, n in enumerate(names)}, specs)
    now = int(time.time() * 1000)
    records = []
    for worker in ("host-a/0", "host-b/0"):  # 300 events each: only together past the 500
        minutes = MinuteCounts(BucketCounter(profile), model="demo", version=1, worker=worker)
        shifted = {n: X[:300, i] for i, n in enumerate(names)}
        shifted["mean_radius"] = shifted["mean_radius"] * 3
        minutes.add(shifted, None, events=300, at_ms=now)
        records += minutes.drain(now, final=True)
    produce_json(k, k.monitoring_topic, records)
    service = run_monitor(cfg, profile_of=lambda v: profile if v == 1 else None)
    wait_until(lambda: "1" in service.snapshot().get("drift", {}), 30, "drift of v1")
    scores = {s["column"]: s for s in service.snapshot()["drift"]["1"]["scores"]}
    assert service.snapshot()["drift"]["1"]["events"] == 600
    assert scores["mean_radius"]["level"] == "alert"
    assert scores["mean_texture"]["level"] == "ok"
    body = urllib.request.urlopen(f"http://127.0.0.1:{service.port}/metrics", timeout=5).read()
    line = next(
        x
        for x in body.decode().splitlines()
        if x.startswith('streamscore_feature_drift{feature="mean_radius",model_version="1"}')
    )
    assert float(line.split()[-1]) == pytest.approx(scores["mean_radius"]["value"])
    assert np.isfinite(float(line.split()[-1]))


def test_monitor_with_auto_rollback_off_only_reports(monitor_config, run_monitor, cancer):
    cfg = monitor_config(window_s=1, min_labels_per_window=20, auto_rollback=False)
    k = cfg.kafka
    store, _, second = _bad_version_promoted(cfg, cancer)
    _all_wrong_over_ten_closed_windows(k, second.version)
    service = run_monitor(cfg)
    wait_until(
        lambda: (service.snapshot().get("last_decision") or {}).get("action") == "report",
        30,
        "a report decision",
    )
    decision = service.snapshot()["last_decision"]
    assert decision["reason"].startswith("live accuracy 0 vs 0.97 held-out of v2 over 3 windows")
    assert decision["reason"].endswith("(auto_rollback off)")
    assert store.alias_state("production")[0] == second.version  # not moved
    published = [
        r.value for r in read(k, k.quality_topic, expected=2) if r.value["type"] == "decision"
    ]
    assert [d["action"] for d in published] == ["report"]  # once for the same windows


def test_a_failed_automatic_rollback_is_not_counted_and_the_next_evaluation_rolls_back(
    monitor_config, run_monitor, cancer, monkeypatch
):
    # Default cool-down (1 hour) and at most one automatic rollback per version: a failed
    # attempt counted as a rollback would block both for good.
    cfg = monitor_config(window_s=1, min_labels_per_window=20)
    k = cfg.kafka
    store, first, second = _bad_version_promoted(cfg, cancer)
    service = run_monitor(cfg)
    attempts: list[str] = []
    real_rollback = service.store.rollback

    def unreachable_once(alias: str, **kwargs: Any) -> Any:
        attempts.append(alias)
        if len(attempts) == 1:
            raise ModelStoreError("injected: the store's folder is unreachable")
        return real_rollback(alias, **kwargs)

    monkeypatch.setattr(service.store, "rollback", unreachable_once)
    _all_wrong_over_ten_closed_windows(k, second.version)
    wait_until(
        lambda: store.alias_state("production")[0] == first.version, 30, "automatic rollback"
    )
    assert attempts == ["production", "production"]
    published = [
        r.value for r in read(k, k.quality_topic, expected=12) if r.value["type"] == "decision"
    ]
    assert [d["action"] for d in published] == ["failed", "rollback"]
    assert "the rollback failed (ModelStoreError: injected" in published[0]["reason"]
    assert published[1]["reason"].startswith("live accuracy 0 vs 0.97 held-out of v2")
    last = store.history("production")[-1]
    assert last.action == "rollback" and last.from_version == second.version


def _start_worker(cfg):
    import threading

    worker = ScoringWorker(cfg)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread


def test_monitor_live_metrics_per_version_across_a_swap_then_rolls_back(
    monitor_config, run_monitor, cancer
):
    cfg = monitor_config(
        window_s=1,
        min_labels_per_window=20,
        consecutive_windows=2,
        cooldown_s=0,
        label_wait_s=60,
    )
    k = cfg.kafka
    ensure_topics(k, [k.labels_topic])
    store = ModelStore.from_config(cfg)
    good = register(store, cancer)
    store.promote(good.version)
    bad = register(store, cancer, bad=True)
    worker, thread = _start_worker(cfg)
    try:
        service = run_monitor(cfg)
        produce(k, [event(cancer, i) for i in range(200)])
        produce_json(k, k.labels_topic, [label(cancer, i) for i in range(200)])
        wait_until(lambda: _versions(service).get("1", {}).get("labelled") == 200, 60, "v1 labels")
        store.promote(bad.version, reason="test: promoted without the gate")
        wait_until(lambda: worker.model is not None and worker.model.version == 2, 5, "swap")
        # Bad v2 serves: three 1-second windows of 40 labelled events each.
        for second in range(4):
            ids = range(1000 + 40 * second, 1040 + 40 * second)
            produce(k, [event(cancer, i) for i in ids])
            produce_json(k, k.labels_topic, [label(cancer, i) for i in ids])
            time.sleep(1.0)
        wait_until(
            lambda: store.alias_state("production")[0] == good.version, 30, "automatic rollback"
        )
        versions = _versions(service)
        assert versions["1"]["accuracy"] > 0.9
        assert versions["2"]["accuracy"] < 0.2 and versions["2"]["labelled"] >= 40
        last = store.history("production")[-1]
        assert last.action == "rollback" and last.from_version == 2
        assert last.reason.startswith("monitor: live accuracy ")
        assert "of v1 over 2 windows of" in last.reason
        wait_until(lambda: worker.model.version == 1, 5, "workers back on v1")
        decisions = [
            r.value for r in read(k, k.quality_topic, expected=1) if r.value["type"] == "decision"
        ]
        assert decisions and decisions[-1]["action"] == "rollback"
    finally:
        worker.stop()
        thread.join(timeout=30)


def _monitor_process(cfg) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(cfg.source)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.mark.slow
def test_monitor_kill_9_mid_stream_loses_and_double_counts_nothing(monitor_config):
    cfg = monitor_config(max_poll_records=500)
    k = cfg.kafka
    ensure_topics(k, [k.labels_topic])
    n = 20_000
    now = int(time.time() * 1000)
    produce_json(k, k.output_topic, [_prediction(i, 1, 0.8, now) for i in range(n)])
    produce_json(k, k.labels_topic, [{"id": f"p-{i}", "label": i % 2} for i in range(n)])
    path = cfg.monitor.state_path
    first = _monitor_process(cfg)
    try:
        wait_until(lambda: read_state(path)["counters"].get("joined", 0) > 0, 60, "the first joins")
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait(timeout=10)
    joined_at_kill = read_state(path)["counters"].get("joined", 0)
    assert joined_at_kill < n, "the monitor finished before it was killed: raise n"
    second = _monitor_process(cfg)
    try:
        wait_until(lambda: read_state(path)["labelled"].get(1) == n, 120, "every label joined")
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    state = read_state(path)
    counters = state["counters"]
    assert counters["predictions"] == n and counters.get("duplicate_predictions", 0) == 0
    assert counters["labels"] == n and counters.get("duplicate_labels", 0) == 0
    assert counters["joined"] == n
    from monitor.joinstate import JoinState

    reopened = JoinState(path)
    try:
        cumulative = reopened.cumulative(1).metrics()
        assert cumulative["labelled"] == n and cumulative["predictions"] == n
        assert cumulative["accuracy"] == pytest.approx(0.5)
    finally:
        reopened.close()
