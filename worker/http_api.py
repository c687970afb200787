"""The worker's HTTP side: health, readiness, model info, /predict, /reload, /metrics, status page.

One server per worker process, in a background thread, on ``[http] port + index``, started by
:mod:`worker.runner`. Binds to ``[http] host`` (loopback by default). ``POST /reload`` needs
``Authorization: Bearer <token>`` with ``[http] admin_token``; with no token configured, admin
endpoints answer 403.

The handlers read the worker through :class:`WorkerView` only (what
:class:`worker.service.ScoringWorker` offers), so the app is tested without a broker.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamscore import jsonio
from streamscore.config import Config
from streamscore.http_common import (
    BodyTooLarge,
    HttpServer,
    OrjsonResponse,
    read_limited_body,
    require_admin,
)
from worker.fleet_view import FleetBook
from worker.live_quality import LiveQualityBook
from worker.processor import Outcome, ServingModel, score_events
from worker.reloader import ReloadEvent
from worker.status import WorkerStatus

MAX_PREDICT_EVENTS = 10_000

STATIC_FILES = {
    "status.js": "text/javascript; charset=utf-8",
    "quality.js": "text/javascript; charset=utf-8",
    "chart.umd.min.js": "text/javascript; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
}


class ModelSource(Protocol):
    """The reloader as the HTTP side sees it (:class:`worker.reloader.ModelReloader`)."""

    @property
    def latest(self) -> ServingModel | None: ...

    @property
    def last_problem(self) -> str: ...

    def check(self) -> ReloadEvent | None: ...


class MetricsSource(Protocol):
    @property
    def registry(self) -> CollectorRegistry: ...


class WorkerView(Protocol):
    """What the HTTP side reads of a running worker."""

    @property
    def worker_id(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    @property
    def model(self) -> ServingModel | None: ...

    @property
    def status(self) -> WorkerStatus: ...

    @property
    def reloader(self) -> ModelSource: ...

    @property
    def metrics(self) -> MetricsSource: ...

    @property
    def fleet(self) -> FleetBook: ...

    @property
    def live_quality(self) -> LiveQualityBook: ...

    def member_record(self, state: str | None = None) -> dict[str, Any]: ...


def build_app(worker: WorkerView, cfg: Config) -> Starlette:
    handlers = _Handlers(worker, cfg)
    routes = [
        Route("/", handlers.page),
        Route("/static/{name}", handlers.static),
        Route("/healthz", handlers.healthz),
        Route("/readyz", handlers.readyz),
        Route("/model", handlers.model_info),
        Route("/status", handlers.status),
        Route("/fleet", handlers.fleet),
        Route("/predict", handlers.predict, methods=["POST"]),
        Route("/reload", handlers.reload, methods=["POST"]),
        Route("/metrics", handlers.metrics),
    ]
    return Starlette(routes=routes)


class _Handlers:
    def __init__(self, worker: WorkerView, cfg: Config) -> None:
        self.worker = worker
        self.cfg = cfg

    async def healthz(self, _request: Request) -> Response:
        return OrjsonResponse({"status": "alive", "worker": self.worker.worker_id})

    async def readyz(self, _request: Request) -> Response:
        worker = self.worker
        if worker.ready:
            return OrjsonResponse({"ready": True, "worker": worker.worker_id})
        reasons = []
        if worker.model is None:
            reasons.append(
                "no model loaded: " + (worker.reloader.last_problem or "waiting for the alias")
            )
        if not worker.status.assigned:
            reasons.append("no partitions assigned (joining the consumer group)")
        return OrjsonResponse({"ready": False, "reasons": reasons}, status_code=503)

    async def model_info(self, _request: Request) -> Response:
        model = self.worker.model
        if model is None:
            return OrjsonResponse(
                {"error": "no model loaded", "alias": self.cfg.model_store.alias}, status_code=503
            )
        return OrjsonResponse(
            {"alias": model.alias, "seq": model.seq, "manifest": model.manifest.to_dict()}
        )

    async def predict(self, request: Request) -> Response:
        model = self.worker.model or self.worker.reloader.latest
        if model is None:
            return OrjsonResponse({"error": "no model loaded yet"}, status_code=503)
        http = self.cfg.http
        try:
            raw = await read_limited_body(request, http.max_body_bytes, http.max_list_body_bytes)
        except BodyTooLarge as exc:
            key = "max_body_bytes" if exc.kind == "an event" else "max_list_body_bytes"
            return exc.response(key)
        events = _predict_events(raw)
        if isinstance(events, Response):
            return events
        body, single = events
        w = self.cfg.worker
        return _predict_response(score_events(body, model, w.id_field, w.passthrough), single)

    async def reload(self, request: Request) -> Response:
        refused = require_admin(request, self.cfg.http.admin_token)
        if refused is not None:
            return refused
        reloader = self.worker.reloader
        event = await _in_thread(reloader.check)
        latest = reloader.latest
        return OrjsonResponse(
            {
                "outcome": event.outcome if event else "unchanged",
                "version": event.version if event else (latest.version if latest else None),
                "reason": event.reason if event else reloader.last_problem,
                "serving": latest.version if latest else None,
            },
            status_code=409 if event is not None and event.outcome == "refused" else 200,
        )

    async def metrics(self, _request: Request) -> Response:
        return Response(
            generate_latest(self.worker.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    async def status(self, _request: Request) -> Response:
        s = self.worker.status
        return OrjsonResponse(
            {
                "worker": s.worker_id,
                "uptime_s": round(time.time() - s.started_at, 1),
                "model": s.model,
                "assigned": [f"{t}[{p}]" for t, p in s.assigned],
                "scored": s.scored,
                "dead_letters": s.dead_letters,
                "batches": s.batches,
            }
        )

    async def fleet(self, _request: Request) -> Response:
        """This member's last minute and every member of its group (member-status records)."""
        own = self.worker.member_record()
        model = self.worker.model
        return OrjsonResponse(
            {
                "self": own,
                "classes": list(model.manifest.classes or ()) if model is not None else [],
                **self.worker.fleet.fleet(own).to_dict(),
                "quality": self.worker.live_quality.to_dict(),
            }
        )

    async def page(self, _request: Request) -> Response:
        html = resources.files("worker").joinpath("static/status.html").read_bytes()
        return Response(html, media_type="text/html; charset=utf-8")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return Response(status_code=404)
        data = resources.files("worker").joinpath(f"static/{name}").read_bytes()
        return Response(data, media_type=STATIC_FILES[name])


def _predict_events(body: bytes) -> tuple[list[dict[str, Any]], bool] | Response:
    """``(events, single)`` from a /predict body, or the 400/413 answer to a bad one."""
    try:
        payload = jsonio.loads(body)
    except jsonio.JSONDecodeError as exc:
        return OrjsonResponse(
            {"error": f"body is not JSON: {exc}", "stage": "decode"}, status_code=400
        )
    single = isinstance(payload, dict)
    events = [payload] if single else payload
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        return OrjsonResponse(
            {"error": "expected a JSON object or a list of objects", "stage": "decode"},
            status_code=400,
        )
    if len(events) > MAX_PREDICT_EVENTS:
        return OrjsonResponse(
            {"error": f"at most {MAX_PREDICT_EVENTS} events per request"}, status_code=413
        )
    return events, single


def _predict_response(outcomes: list[Outcome], single: bool) -> Response:
    """200 when every event scored, else 422 (one event) or 207 (a list, results in order)."""
    results: list[dict[str, Any]] = [
        outcome.body
        if outcome.body is not None
        else {"error": outcome.message, "stage": outcome.stage, "error_class": outcome.error_class}
        for outcome in outcomes
    ]
    if single:
        status = 200 if outcomes[0].body is not None else 422
        return OrjsonResponse(results[0], status_code=status)
    status = 200 if all(o.body is not None for o in outcomes) else 207
    return OrjsonResponse({"results": results}, status_code=status)


async def _in_thread(func: Any) -> Any:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(func)


__all__ = ["HttpServer", "WorkerView", "build_app"]
