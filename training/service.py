"""The retraining service: ``POST /retrain`` (token), ``GET /jobs/<id>``, health and metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamscore.config import Config
from streamscore.http_common import OrjsonResponse, require_admin
from training.jobs import Job, JobBusy, JobRunner


class TrainerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "streamscore_training_runs_total",
            "Training runs by outcome (promoted, registered, gate_failed, failed)",
            ["outcome", "trigger"],
            registry=self.registry,
        )
        self.running = Gauge(
            "streamscore_training_running",
            "1 while a training run is in progress",
            registry=self.registry,
        )
        self.last_finished = Gauge(
            "streamscore_training_last_finished_timestamp_seconds",
            "When the last training run finished",
            registry=self.registry,
        )
        self.last_duration = Gauge(
            "streamscore_training_last_duration_seconds",
            "How long the last training run took",
            registry=self.registry,
        )

    def finished(self, job: Job) -> None:
        self.runs.labels(outcome=job.status, trigger=job.trigger).inc()
        self.running.set(0)
        if job.finished_at is not None:
            self.last_finished.set(job.finished_at)
            if job.started_at is not None:
                self.last_duration.set(job.finished_at - job.started_at)


def build_trainer_app(cfg: Config, runner: JobRunner | None = None) -> tuple[Starlette, JobRunner]:
    metrics = TrainerMetrics()
    runner = runner or JobRunner(cfg, on_finish=metrics.finished)
    if runner.on_finish is None:
        runner.on_finish = metrics.finished

    async def retrain(request: Request) -> Response:
        refused = require_admin(request, cfg.http.admin_token)
        if refused is not None:
            return refused
        try:
            job = runner.submit("api")
        except JobBusy as exc:
            return OrjsonResponse({"error": str(exc)}, status_code=409)
        metrics.running.set(1)
        return OrjsonResponse(
            {"job": job.id, "status": job.status, "url": f"/jobs/{job.id}"}, status_code=202
        )

    async def job(request: Request) -> Response:
        found = runner.get(request.path_params["job_id"])
        if found is None:
            return OrjsonResponse({"error": "no such job"}, status_code=404)
        data: dict[str, Any] = found.to_dict()
        data["log_tail"] = data.pop("log")[-50:]
        return OrjsonResponse(data)

    async def healthz(_request: Request) -> Response:
        return OrjsonResponse({"status": "alive"})

    async def prometheus(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/retrain", retrain, methods=["POST"]),
            Route("/jobs/{job_id}", job),
            Route("/healthz", healthz),
            Route("/metrics", prometheus),
        ]
    )
    return app, runner
