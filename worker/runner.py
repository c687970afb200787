"""One worker process: a :class:`~worker.service.ScoringWorker` and its HTTP side.

The runner owns the HTTP server: it starts it before the worker joins its group (so
``/healthz`` and ``/readyz`` answer while the worker waits for a model) and stops it after the
worker returned. ``streamscore worker run`` and in-process tests start workers through it.
"""

from __future__ import annotations

import logging

from streamscore.config import Config
from streamscore.http_common import HttpServer
from worker.http_api import build_app
from worker.service import ScoringWorker

log = logging.getLogger(__name__)


class WorkerProcess:
    """``run()`` serves HTTP (if ``[http] enabled``) while the worker runs; ``stop()`` ends it."""

    def __init__(self, cfg: Config, *, index: int = 0, worker_id: str | None = None) -> None:
        self.cfg = cfg
        self.index = index
        self.worker = ScoringWorker(cfg, index=index, worker_id=worker_id)
        self.http: HttpServer | None = None

    def stop(self) -> None:
        """Signal-safe: the worker finishes its batch in flight, then ``run()`` returns."""
        self.worker.stop()

    def run(self) -> None:
        self.http = self._start_http()
        try:
            self.worker.run()
        finally:
            if self.http is not None:
                self.http.stop()

    def _start_http(self) -> HttpServer | None:
        http = self.cfg.http
        if not http.enabled:
            return None
        port = http.port + self.index if http.port else 0
        server = HttpServer(build_app(self.worker, self.cfg), http.host, port)
        try:
            server.start()
        except OSError as exc:
            log.error(
                "HTTP side not started (%s): change [http] port or set [http] enabled = false; "
                "scoring continues without it",
                exc,
            )
            return None
        return server
