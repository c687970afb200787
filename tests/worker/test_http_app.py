"""The worker's HTTP app against a fake worker view: no broker, no worker (a real uvicorn server on
a free loopback port; starlette's TestClient warns about its httpx dependency)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from streamscore.config import config_from_dict
from streamscore.http_common import HttpServer
from worker.fleet import MEMBER_STATUS
from worker.fleet_view import FleetBook
from worker.http_api import MAX_PREDICT_EVENTS, build_app
from worker.live_quality import LiveQualityBook
from worker.reloader import ReloadEvent
from worker.status import WorkerStatus

TOKEN = "s3cret-token"


@dataclass
class FakeReloader:
    latest: Any = None
    last_problem: str = "alias 'production' is not set"
    event: ReloadEvent | None = None

    def check(self) -> ReloadEvent | None:
        return self.event


@dataclass
class FakeMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)


@dataclass
class FakeWorker:
    worker_id: str = "w-test"
    model: Any = None
    status: WorkerStatus = field(default_factory=lambda: WorkerStatus("w-test", 0.0))
    reloader: FakeReloader = field(default_factory=FakeReloader)
    metrics: FakeMetrics = field(default_factory=FakeMetrics)
    fleet: FleetBook = field(default_factory=lambda: FleetBook("g", gone_after=6.0))
    live_quality: LiveQualityBook = field(
        default_factory=lambda: LiveQualityBook("demo", lambda v: {"accuracy": 0.97})
    )

    @property
    def ready(self) -> bool:
        return self.model is not None and bool(self.status.assigned)

    def member_record(self, state: str | None = None) -> dict[str, Any]:
        return {
            "type": MEMBER_STATUS,
            "group": "g",
            "worker": self.worker_id,
            "state": "waiting",
            "published_at": time.time(),
            "events_per_s": 0.0,
            "partitions": [],
        }


@pytest.fixture
def client(tmp_path) -> Iterator[Callable[[FakeWorker], httpx.Client]]:
    """client(worker) -> an HTTP client of the app serving ``worker``."""
    cfg = config_from_dict({"http": {"admin_token": TOKEN}}, base_dir=tmp_path)
    servers: list[HttpServer] = []
    clients: list[httpx.Client] = []

    def start(worker: FakeWorker) -> httpx.Client:
        server = HttpServer(build_app(worker, cfg), "127.0.0.1", 0)
        server.start()
        servers.append(server)
        clients.append(httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10))
        return clients[-1]

    yield start
    for c in clients:
        c.close()
    for server in servers:
        server.stop()


def test_http_app_fleet_shows_this_member_and_the_others_it_heard_of(client):
    worker = FakeWorker()
    other = worker.member_record() | {"worker": "w-other", "state": "ready", "events_per_s": 5.0}
    worker.fleet.add(other)
    worker.fleet.add(other | {"worker": "w-elsewhere", "group": "another-group"})
    body = client(worker).get("/fleet").json()
    assert body["self"]["worker"] == "w-test" and body["group"] == "g"
    assert {m["worker"]: m["state"] for m in body["members"]} == {
        "w-other": "ready",
        "w-test": "waiting",
    }
    assert body["total"]["members"] == 2 and body["total"]["events_per_s"] == 5.0
    assert body["classes"] == []


def test_http_app_fleet_carries_live_quality_per_version_next_to_held_out(client):
    worker = FakeWorker()
    assert client(worker).get("/fleet").json()["quality"] == {
        "versions": {},
        "last_decision": None,
        "candidates": {},
    }
    worker.live_quality.add(
        {
            "type": "window",
            "model": {"name": "demo", "version": 2},
            "window_start_ms": 0,
            "window_end_ms": 3_600_000,
            "metrics": {"accuracy": 0.5},
            "cumulative": {"accuracy": 0.6, "labelled": 900},
            "at": 1,
        }
    )
    quality = client(worker).get("/fleet").json()["quality"]
    assert quality["versions"]["2"]["held_out"] == {"accuracy": 0.97}
    assert quality["versions"]["2"]["live"] == {"accuracy": 0.6, "labelled": 900}
    assert quality["versions"]["2"]["window"]["metrics"] == {"accuracy": 0.5}


def test_http_app_healthz_answers_alive_without_a_model(client):
    assert client(FakeWorker()).get("/healthz").json() == {
        "status": "alive",
        "worker": "w-test",
    }


def test_http_app_readyz_gives_every_reason_it_is_not_ready(client):
    response = client(FakeWorker()).get("/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"] == [
        "no model loaded: alias 'production' is not set",
        "no partitions assigned (joining the consumer group)",
    ]


def test_http_app_model_and_predict_without_a_model_answer_503(client):
    http = client(FakeWorker())
    assert http.get("/model").json() == {"error": "no model loaded", "alias": "production"}
    assert http.post("/predict", content=b"{}").status_code == 503


def test_http_app_predict_refuses_bad_bodies_before_scoring(client):
    http = client(FakeWorker(model=object()))  # never reached: the body is refused
    assert http.post("/predict", content=b"{nope").json()["stage"] == "decode"
    assert http.post("/predict", content=b"[1, 2]").status_code == 400
    too_many = b"[" + b",".join([b"{}"] * (MAX_PREDICT_EVENTS + 1)) + b"]"
    assert http.post("/predict", content=too_many).status_code == 413


def test_http_app_status_shows_the_workers_counts(client):
    status = WorkerStatus("w-test", 0.0, assigned=[("events", 2)], scored=7, dead_letters=1)
    body = client(FakeWorker(status=status)).get("/status").json()
    assert body["assigned"] == ["events[2]"]
    assert (body["scored"], body["dead_letters"], body["batches"]) == (7, 1, 0)


def test_http_app_reload_needs_the_admin_token_and_reports_refusals(client):
    refused = ReloadEvent("refused", "production", 3, "accuracy below the gate")
    http = client(FakeWorker(reloader=FakeReloader(event=refused)))
    assert http.post("/reload").status_code == 401
    response = http.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 409
    assert response.json()["reason"] == "accuracy below the gate"


def test_http_app_metrics_exports_the_workers_registry(client):
    worker = FakeWorker()
    Counter("streamscore_test_total", "a test counter", registry=worker.metrics.registry).inc(3)
    assert "streamscore_test_total 3.0" in client(worker).get("/metrics").text


def test_http_app_static_files_are_served_and_unknown_names_are_not(client):
    http = client(FakeWorker())
    assert http.get("/").headers["content-type"].startswith("text/html")
    assert http.get("/static/status.css").status_code == 200
    assert http.get("/static/secrets.txt").status_code == 404
