"""A real worker counting drift per batch and publishing per-minute counts (real broker)."""

from __future__ import annotations

import threading
import time

import pytest

import monitor.drift
import monitor.worker_drift
from model_store import ModelStore
from monitor.profile import build_profile
from tests.kafka_helpers import produce, read, wait_until
from tests.monitor.conftest import event, register
from worker.service import ScoringWorker

pytestmark = pytest.mark.broker


def test_worker_publishes_drift_counts_and_exports_feature_drift(
    monitor_config, cancer, monkeypatch
):
    # A one-second "minute", so finished minutes come within the test.
    monkeypatch.setattr(monitor.drift, "MINUTE_MS", 1000)
    monkeypatch.setattr(monitor.worker_drift, "MINUTE_MS", 1000)
    names, X, _ = cancer
    cfg = monitor_config(drift_min_events=100)
    k = cfg.kafka
    store = ModelStore.from_config(cfg)
    manifest = register(store, cancer)
    store.promote(manifest.version)
    specs = store.manifest(manifest.version).features
    profile = build_profile({n: X[:, i] for i, n in enumerate(names)}, specs, predictions=[0, 1])
    worker = ScoringWorker(cfg)
    worker.profile_of = lambda version: profile if version == manifest.version else None
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        produce(k, [event(cancer, i) for i in range(300)])
        read(k, k.output_topic, expected=300)
        time.sleep(1.1)  # the minute of those events is over ...
        produce(k, [event(cancer, i, prefix="late") for i in range(5)])  # ... handed over now
        # The 300 may straddle a (one-second) minute: their counts then come as two records.
        records: list = []
        deadline = time.monotonic() + 30
        while sum(r["counts"]["events"] for r in records) < 300 and time.monotonic() < deadline:
            got = read(k, k.monitoring_topic, expected=len(records) + 1, timeout_s=5)
            records = [r.value for r in got]
        counted = sum(r["counts"]["events"] for r in records)
        assert counted >= 300 and all(r["type"] == "drift-counts" for r in records)
        assert records[0]["model"] == {"name": "demo", "version": manifest.version}
        assert set(records[0]["counts"]["columns"]) == {*names, "__predictions__"}
        gauge = worker.metrics.feature_drift.labels(
            feature="mean_radius", model_version=str(manifest.version)
        )
        wait_until(lambda: gauge._value.get() > 0, 10, "streamscore_feature_drift set")
    finally:
        worker.stop()
        thread.join(timeout=30)
