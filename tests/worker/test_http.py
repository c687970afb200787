"""The worker's HTTP side against a running worker on the real broker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.kafka_helpers import produce, read, wait_until
from worker.runner import WorkerProcess
from worker.service import ScoringWorker

pytestmark = pytest.mark.broker

TOKEN = "s3cret-token"


@pytest.fixture
def http_worker(config_factory) -> Iterator[Callable[..., tuple[ScoringWorker, httpx.Client]]]:
    started: list[tuple[WorkerProcess, threading.Thread, httpx.Client]] = []

    def start(token: str = TOKEN, **sections) -> tuple[ScoringWorker, httpx.Client]:
        cfg = config_factory(http={"enabled": True, "port": 0, "admin_token": token}, **sections)
        process = WorkerProcess(cfg)
        thread = threading.Thread(target=process.run, daemon=True)
        thread.start()
        wait_until(lambda: process.http is not None, 10, "the HTTP side")
        assert process.http is not None
        client = httpx.Client(base_url=f"http://127.0.0.1:{process.http.port}", timeout=10)
        started.append((process, thread, client))
        return process.worker, client

    yield start
    for process, thread, client in started:
        client.close()
        process.stop()
        thread.join(timeout=30)


def test_http_binds_to_loopback_by_default(config_factory):
    cfg = config_factory()
    assert cfg.http.host == "127.0.0.1"


def test_healthz_and_readiness_turning_ready(http_worker, register):
    worker, client = http_worker()
    assert client.get("/healthz").json()["status"] == "alive"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert any("no model loaded" in r for r in response.json()["reasons"])
    register()
    wait_until(lambda: client.get("/readyz").status_code == 200, 15, "readiness")
    assert worker.ready


def test_model_endpoint_shows_serving_manifest(http_worker, register):
    register()
    worker, client = http_worker()
    wait_until(lambda: worker.model is not None, 10, "model")
    body = client.get("/model").json()
    assert body["alias"] == "production"
    assert body["manifest"]["version"] == 1
    assert len(body["manifest"]["features"]) == 30


def test_predict_single_and_batch_in_stream_format(http_worker, register, demo_set):
    register()
    worker, client = http_worker()
    wait_until(lambda: worker.reloader.latest is not None, 10, "model")
    single = client.post("/predict", json=demo_set.event(0))
    assert single.status_code == 200
    body = single.json()
    assert body["id"] == "e-0" and body["model"] == {"name": "demo", "version": 1}
    assert set(body["probabilities"]) == {"0", "1"}
    many = client.post("/predict", json=[demo_set.event(i) for i in range(5)])
    assert many.status_code == 200
    assert [r["id"] for r in many.json()["results"]] == [f"e-{i}" for i in range(5)]


def test_predict_bad_event_gets_4xx_with_the_dead_letter_message(http_worker, register, demo_set):
    register()
    worker, client = http_worker()
    wait_until(lambda: worker.reloader.latest is not None, 10, "model")
    event = demo_set.event(0)
    del event["mean_radius"]
    response = client.post("/predict", json=event)
    assert response.status_code == 422
    assert response.json() == {
        "error": 'feature "mean_radius" missing (model demo v1 requires 30 features)',
        "stage": "schema",
        "error_class": "SchemaError",
    }
    assert client.post("/predict", content=b"{oops").status_code == 400
    assert client.post("/predict", json=[1, 2]).status_code == 400
    mixed = client.post("/predict", json=[demo_set.event(1), event])
    assert mixed.status_code == 207
    assert "error" in mixed.json()["results"][1]


def test_reload_requires_the_bearer_token(http_worker, register):
    register()
    _, client = http_worker()
    assert client.post("/reload").status_code == 401
    assert client.post("/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/reload", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    ok = client.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_reload_is_off_without_a_configured_token(http_worker, register):
    register()
    _, client = http_worker(token="")
    response = client.post("/reload", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403
    assert "admin_token" in response.json()["error"]


def test_reload_switches_versions_now(http_worker, register, model_store):
    register()
    worker, client = http_worker(worker={"reload_poll_ms": 60_000})
    wait_until(lambda: worker.reloader.latest is not None, 10, "model")
    second = register(C=0.1, promote=False)
    model_store.promote(second.version)
    response = client.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.json()["outcome"] == "loaded" and response.json()["serving"] == 2
    wait_until(lambda: worker.model is not None and worker.model.version == 2, 5, "swap")


def test_metrics_move_as_events_flow(http_worker, register, demo_set):
    register()
    worker, client = http_worker()
    good = [demo_set.event(i) for i in range(40)]
    produce(worker.cfg.kafka, [*good, b"nope"])
    read(worker.cfg.kafka, worker.cfg.kafka.output_topic, expected=40)
    wait_until(lambda: worker.status.scored == 40 and worker.status.dead_letters == 1, 10, "counts")
    text = client.get("/metrics").text
    assert 'streamscore_events_scored_total{model_version="1"} 40.0' in text
    assert 'streamscore_dead_letters_total{model_version="1",stage="decode"} 1.0' in text
    assert 'streamscore_model_info{alias="production",name="demo",version="1"} 1.0' in text
    assert 'streamscore_model_loads_total{outcome="loaded"} 1.0' in text
    for name in (
        "streamscore_batch_size_count",
        "streamscore_scoring_seconds_count",
        "streamscore_end_to_end_seconds_count",
        "streamscore_predictions_total",
        "streamscore_partitions_assigned 4.0",
    ):
        assert name in text
    wait_until(lambda: "streamscore_consumer_lag{" in client.get("/metrics").text, 5, "lag gauge")
