"""HTTP pieces every streamscore service shares: JSON responses, the admin token check, and a
uvicorn server running in a background thread."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from streamscore import jsonio
from streamscore.config import Secret

log = logging.getLogger(__name__)


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return jsonio.dumps(content)


class BodyTooLarge(Exception):
    """A request body went over its limit while it was being read."""

    def __init__(self, limit: int, kind: str) -> None:
        super().__init__(f"{kind} body over {limit:,} bytes")
        self.limit = limit
        self.kind = kind

    def response(self, key: str) -> Response:
        return OrjsonResponse(
            {
                "error": f"{self.kind} body is larger than {self.limit:,} bytes ([http] {key})",
                "stage": "decode",
            },
            status_code=413,
        )


async def read_limited_body(request: Request, event_limit: int, list_limit: int) -> bytes:
    """The request body, read chunk by chunk and abandoned as soon as it passes its limit:
    ``event_limit`` for one JSON object, ``list_limit`` for a JSON list (told apart by the
    first byte that is not white space). A ``Content-Length`` over the larger limit is refused
    before anything is read. Raises :class:`BodyTooLarge`; memory stays within the limit plus
    one chunk whatever the client sends."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max(event_limit, list_limit):
        raise BodyTooLarge(max(event_limit, list_limit), "request")
    chunks: list[bytes] = []
    size = 0
    limit, kind = max(event_limit, list_limit), "request"
    async for chunk in request.stream():
        if not chunk:
            continue
        if not chunks:
            first = chunk.lstrip()[:1]
            if first == b"[":
                limit, kind = list_limit, "a list"
            elif first:
                limit, kind = event_limit, "an event"
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit, kind)
        chunks.append(chunk)
    return b"".join(chunks)


def token_ok(request: Request, token: Secret) -> bool:
    """Constant-time bearer-token check."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), token.reveal().encode())


def require_admin(request: Request, token: Secret) -> Response | None:
    if not token:
        return OrjsonResponse(
            {
                "error": "admin endpoints are off: set [http] admin_token "
                "(or STREAMSCORE__HTTP__ADMIN_TOKEN)"
            },
            status_code=403,
        )
    if not token_ok(request, token):
        return OrjsonResponse(
            {"error": "missing or wrong bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return None


class HttpServer:
    """uvicorn in a daemon thread; ``port`` is the bound port once started (0 → any free)."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise OSError(f"HTTP server could not bind {self.host}:{self.port}")
            if time.monotonic() > deadline:
                raise OSError(f"HTTP server on {self.host}:{self.port} did not start")
            time.sleep(0.02)
        for server in self.server.servers:
            for sock in server.sockets:
                self.port = sock.getsockname()[1]
                break
        log.info("HTTP on http://%s:%d (status page /, metrics /metrics)", self.host, self.port)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
