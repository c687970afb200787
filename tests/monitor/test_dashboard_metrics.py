"""The dashboard's model-quality panels query only metrics a running ``streamscore monitor``
exports (the worker's panels: tests/worker/test_dashboards.py)."""

from __future__ import annotations

import re
import time
import urllib.request

import numpy as np
import pytest

from model_store import ModelStore
from streamscore.kafka_admin import ensure_topics
from tests.kafka_helpers import produce_json
from tests.monitor.conftest import register
from tests.test_deploy import dashboard_metrics

pytestmark = pytest.mark.broker


def _exported(port: int) -> set[str]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return set(re.findall(r"^(streamscore_[a-z_]+?)(?:_created)?[{ ]", body, flags=re.MULTILINE))


def test_every_metric_the_quality_panels_query_is_exported_by_a_running_monitor(
    monitor_config, run_monitor, cancer
):
    from monitor.drift import BucketCounter, MinuteCounts
    from monitor.profile import build_profile

    wanted = dashboard_metrics(monitor=True)
    assert {
        "streamscore_live_quality",
        "streamscore_live_window_quality",
        "streamscore_live_labelled",
        "streamscore_feature_drift",
        "streamscore_monitor_decisions_total",
    } <= wanted, wanted
    names, X, y = cancer
    cfg = monitor_config(window_s=1, min_labels_per_window=20)
    k = cfg.kafka
    ensure_topics(k, [k.labels_topic, k.monitoring_topic])
    store = ModelStore.from_config(cfg)
    store.promote(register(store, cancer).version)
    version = register(store, cancer).version
    store.promote(version)
    # Predictions of the production version in closed 1-second windows, with their labels
    # (cumulative, window and coverage gauges; the rule decides, so a decision is counted).
    start = int(time.time() * 1000) // 1000 * 1000 - 10_000
    predictions = [
        {
            "id": f"p-{i}",
            "prediction": int(y[i]),
            "probabilities": {"0": 0.1 + 0.8 * (1 - int(y[i])), "1": 0.1 + 0.8 * int(y[i])},
            "model": {"name": "demo", "version": version},
            "scored_at": start + i * 25,
        }
        for i in range(400)
    ]
    produce_json(k, k.output_topic, predictions, key_field="id")
    produce_json(k, k.labels_topic, [{"id": f"p-{i}", "label": int(y[i])} for i in range(400)])
    # A worker's drift counts of 600 events against the version's profile (feature and
    # prediction drift).
    specs = [type("Spec", (), {"name": n, "dtype": "float"})() for n in names]
    columns = {n: X[:, i] for i, n in enumerate(names)}
    profile = build_profile(columns, specs, predictions=y, task="classification")
    minutes = MinuteCounts(BucketCounter(profile), model="demo", version=version, worker="h/0")
    minutes.add(
        {n: np.resize(c, 600) for n, c in columns.items()},
        np.resize(y, 600),
        events=600,
        at_ms=int(time.time() * 1000),
    )
    produce_json(k, k.monitoring_topic, minutes.drain(int(time.time() * 1000), final=True))

    service = run_monitor(cfg, profile_of=lambda v: profile if v == version else None)
    deadline = time.monotonic() + 30
    missing = sorted(wanted - _exported(service.port))
    while missing and time.monotonic() < deadline:
        time.sleep(0.2)
        missing = sorted(wanted - _exported(service.port))
    assert missing == []
