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
