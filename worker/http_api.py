"""The worker's HTTP side: health, readiness, model info, /predict, /reload, /metrics, status page.

One server per worker process, in a background thread, on ``[http] port + index``. Binds to
``[http] host`` (loopback by default). ``POST /reload`` needs ``Authorization: Bearer <token>``
with ``[http] admin_token``; with no token configured, admin endpoints answer 403.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamscore import jsonio
from streamscore.config import HttpConfig
from streamscore.http_common import (
    BodyTooLarge,
    HttpServer,
    OrjsonResponse,
    read_limited_body,
    require_admin,
)
from worker.processor import score_events

if TYPE_CHECKING:
    from worker.service import ScoringWorker

MAX_PREDICT_EVENTS = 10_000


def build_app(worker: ScoringWorker, http: HttpConfig) -> Starlette:
    cfg = worker.cfg

    async def healthz(_request: Request) -> Response:
        return OrjsonResponse({"status": "alive", "worker": worker.worker_id})

    async def readyz(_request: Request) -> Response:
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

    async def model_info(_request: Request) -> Response:
        model = worker.model
        if model is None:
            return OrjsonResponse(
                {"error": "no model loaded", "alias": cfg.model_store.alias}, status_code=503
            )
        return OrjsonResponse(
            {"alias": model.alias, "seq": model.seq, "manifest": model.manifest.to_dict()}
        )

    async def predict(request: Request) -> Response:
        model = worker.model or worker.reloader.latest
        if model is None:
            return OrjsonResponse({"error": "no model loaded yet"}, status_code=503)
        try:
            body = await read_limited_body(request, http.max_body_bytes, http.max_list_body_bytes)
        except BodyTooLarge as exc:
            key = "max_body_bytes" if exc.kind == "an event" else "max_list_body_bytes"
            return exc.response(key)
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
        outcomes = score_events(events, model, cfg.worker.id_field, cfg.worker.passthrough)
        results: list[dict[str, Any]] = []
        for outcome in outcomes:
            if outcome.body is not None:
                results.append(outcome.body)
            else:
                results.append(
                    {
                        "error": outcome.message,
                        "stage": outcome.stage,
                        "error_class": outcome.error_class,
                    }
                )
        if single:
            status = 200 if outcomes[0].body is not None else 422
            return OrjsonResponse(results[0], status_code=status)
        status = 200 if all(o.body is not None for o in outcomes) else 207
        return OrjsonResponse({"results": results}, status_code=status)

    async def reload(request: Request) -> Response:
        refused = require_admin(request, http.admin_token)
        if refused is not None:
            return refused
        event = await _in_thread(worker.reloader.check)
        latest = worker.reloader.latest
        return OrjsonResponse(
            {
                "outcome": event.outcome if event else "unchanged",
                "version": event.version if event else (latest.version if latest else None),
                "reason": event.reason if event else worker.reloader.last_problem,
                "serving": latest.version if latest else None,
            },
            status_code=409 if event is not None and event.outcome == "refused" else 200,
        )

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(worker.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def status(_request: Request) -> Response:
        s = worker.status
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

    async def page(_request: Request) -> Response:
        html = resources.files("worker").joinpath("static/status.html").read_bytes()
        return Response(html, media_type="text/html; charset=utf-8")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return Response(status_code=404)
        data = resources.files("worker").joinpath(f"static/{name}").read_bytes()
        return Response(data, media_type=STATIC_FILES[name])

    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/model", model_info),
        Route("/status", status),
        Route("/predict", predict, methods=["POST"]),
        Route("/reload", reload, methods=["POST"]),
        Route("/metrics", metrics),
    ]
    return Starlette(routes=routes)


STATIC_FILES = {
    "status.js": "text/javascript; charset=utf-8",
    "chart.umd.min.js": "text/javascript; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
}


async def _in_thread(func: Any) -> Any:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(func)


__all__ = ["HttpServer", "build_app"]
