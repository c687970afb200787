"""Retraining on request (POST /retrain) and on a schedule; workers follow what passes the gate."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from app.cli import main
from model_store import ModelStore
from streamscore.http_common import HttpServer
from tests.kafka_helpers import wait_until
from training import export_demo_data
from training.schedule import Schedule, parse_cron
from training.service import build_trainer_app
from worker.service import ScoringWorker

TOKEN = "trainer-token"


@contextlib.contextmanager
def TestClient(app) -> Iterator[httpx.Client]:
    """The app on a real uvicorn server on a free loopback port, and a client for it."""
    server = HttpServer(app, "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
            yield client
    finally:
        server.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def cfg(config_factory):
    cfg = config_factory(
        http={"admin_token": TOKEN},
        model_store={"model_name": "breast-cancer"},
        training={"schedule": {"cron": "* * * * * */2"}},
    )
    export_demo_data(cfg)
    return cfg


def wait_job(client: httpx.Client, job_id: str) -> dict:
    result: dict = {}

    def done() -> bool:
        result.update(client.get(f"/jobs/{job_id}").json())
        return result["status"] not in ("queued", "running")

    wait_until(done, 60, f"job {job_id}")
    return result


def test_retrain_needs_the_token(cfg):
    app, _ = build_trainer_app(cfg)
    with TestClient(app) as client:
        assert client.post("/retrain").status_code == 401
        assert client.post("/retrain", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get("/healthz").json() == {"status": "alive"}


def test_retrain_runs_a_job_that_registers_and_promotes(cfg):
    app, _runner = build_trainer_app(cfg)
    with TestClient(app) as client:
        response = client.post("/retrain", headers=AUTH)
        assert response.status_code == 202
        job = wait_job(client, response.json()["job"])
        assert job["status"] == "promoted"
        assert job["version"] == 1
        assert job["verdict"]["passed"] is True
        assert any("step fit" in line for line in job["log_tail"])
        assert ModelStore.from_config(cfg).aliases()["production"] == 1
        metrics = client.get("/metrics").text
        assert 'streamscore_training_runs_total{outcome="promoted",trigger="api"} 1.0' in metrics
        assert client.get("/jobs/doesnotexist").status_code == 404


@pytest.mark.parametrize(
    "job_id",
    [
        "a" * 300,  # longer than a file name may be: was an unhandled 500 (ENAMETOOLONG)
        "0123456789ab",  # the form of a job id, but no such job
        "ABCDEF012345",  # upper case: never handed out
        "\u00b2" * 12,  # digits to str.isalnum(), not hex digits
        "..%2F..%2Fetc",
        "job.json",
    ],
)
def test_trainer_answers_404_for_a_job_id_that_names_no_job(cfg, job_id):
    app, _runner = build_trainer_app(cfg)
    with TestClient(app) as client:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 404
        if response.headers.get("content-type", "").startswith("application/json"):
            assert response.json() == {"error": "no such job"}


def test_never_two_training_runs_at_once(cfg):
    app, _runner = build_trainer_app(cfg)
    with TestClient(app) as client:
        first = client.post("/retrain", headers=AUTH)
        second = client.post("/retrain", headers=AUTH)
        assert first.status_code == 202
        assert second.status_code == 409 and "still" in second.json()["error"]
        wait_job(client, first.json()["job"])


def test_training_lock_refuses_a_concurrent_cli_run(cfg):
    from training.lock import training_lock

    store = ModelStore.from_config(cfg)
    with training_lock(store.folder / ".training.lock"):
        app, _ = build_trainer_app(cfg)
        with TestClient(app) as client:
            job = wait_job(client, client.post("/retrain", headers=AUTH).json()["job"])
    assert job["status"] == "failed"
    assert "another training run holds" in job["error"]


def test_failed_gate_leaves_production_untouched_and_says_why(config_factory):
    cfg = config_factory(
        http={"admin_token": TOKEN}, training={"gate": {"min": {"accuracy": 1.01}}}
    )
    export_demo_data(cfg)
    app, _ = build_trainer_app(cfg)
    with TestClient(app) as client:
        job = wait_job(client, client.post("/retrain", headers=AUTH).json()["job"])
    assert job["status"] == "gate_failed"
    assert "accuracy" in job["error"] and "< 1.01" in job["error"]
    store = ModelStore.from_config(cfg)
    assert "production" not in store.aliases() and store.aliases()["candidate"] == job["version"]


def test_schedule_fires_on_the_cron_expression(cfg):
    plan = Schedule(cfg)
    jobs = plan.run(max_runs=2)
    # the second run finds the data, settings and code of v1: nothing new to register
    assert [j.status for j in jobs] == ["promoted", "unchanged"]
    assert [j.version for j in jobs] == [1, 1]
    assert [j.trigger for j in jobs] == ["schedule", "schedule"]
    assert jobs[1].started_at - jobs[0].started_at >= 1.5


def test_schedule_cli_runs_and_reports(cfg):
    result = CliRunner().invoke(
        main, ["--config", str(cfg.source), "trainer", "schedule", "--max-runs", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "promoted v1" in result.output


def test_bad_cron_is_a_config_error():
    from streamscore.exceptions import ConfigError

    with pytest.raises(ConfigError, match="not a cron expression"):
        parse_cron("every day")


@pytest.mark.broker
def test_retrain_that_passes_the_gate_swaps_running_workers(cfg):
    worker_cfg = cfg
    app, _ = build_trainer_app(cfg)
    with TestClient(app) as client:
        wait_job(client, client.post("/retrain", headers=AUTH).json()["job"])
        worker = ScoringWorker(worker_cfg)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: worker.model is not None and worker.model.version == 1, 10, "v1")
            data = cfg.training.data_path  # new data arrives (one row fewer): worth a version
            data.write_text(data.read_text().rstrip("\n").rsplit("\n", 1)[0] + "\n")
            job = wait_job(client, client.post("/retrain", headers=AUTH).json()["job"])
            assert job["status"] == "promoted" and job["version"] == 2
            wait_until(lambda: worker.model.version == 2, 1.5, "the worker to swap to v2")
        finally:
            worker.stop()
            thread.join(timeout=30)


def test_trainer_serve_binds_loopback_and_answers(cfg):
    import os
    import subprocess
    import sys

    from broker import free_port

    port = free_port()
    env = {**os.environ, "STREAMSCORE__TRAINER__PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamscore", "--config", str(cfg.source), "trainer", "serve"],
        env=env,
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 20, "trainer serve")
        assert httpx.post(f"http://127.0.0.1:{port}/retrain", timeout=5).status_code == 401
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0
