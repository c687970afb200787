"""The Grafana dashboard queries only metrics that a running worker (or the trainer) exports; its
model-quality panels, only metrics a running `streamscore monitor` exports
(tests/monitor/test_dashboard_metrics.py)."""

from __future__ import annotations

import re
import threading

import httpx
import pytest

from tests.kafka_helpers import produce, read, wait_until
from tests.test_deploy import dashboard_metrics
from worker.runner import WorkerProcess


@pytest.mark.broker
def test_every_metric_the_dashboard_queries_is_exported(config_factory, register, demo_set):
    from training.service import TrainerMetrics

    register()
    cfg = config_factory(http={"enabled": True, "port": 0})
    process = WorkerProcess(cfg)
    worker = process.worker
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: process.http is not None, 10, "HTTP side")
        produce(cfg.kafka, [*[demo_set.event(i) for i in range(20)], b"bad"])
        read(cfg.kafka, cfg.kafka.output_topic, expected=20)
        wait_until(lambda: worker.status.dead_letters == 1, 10, "the dead letter")
        wait_until(
            lambda: (
                "streamscore_consumer_lag{"
                in httpx.get(f"http://127.0.0.1:{process.http.port}/metrics").text
            ),
            5,
            "lag",
        )
        exported = httpx.get(f"http://127.0.0.1:{process.http.port}/metrics").text
    finally:
        worker.stop()
        thread.join(timeout=30)
    from prometheus_client import generate_latest

    trainer = TrainerMetrics()
    trainer.runs.labels(outcome="promoted", trigger="api").inc()
    exported += generate_latest(trainer.registry).decode()
    present = set(re.findall(r"^(streamscore_[a-z_]+)", exported, flags=re.MULTILINE))
    missing = sorted(dashboard_metrics() - present)
    assert dashboard_metrics(), "the dashboard queries no metric"
    assert missing == []
