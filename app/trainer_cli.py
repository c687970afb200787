"""``streamscore trainer serve|schedule``: retraining on request and on a schedule."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import click
from rich.markup import escape

from app.clitools import StreamscoreGroup, config_option, console, pass_state, setup_logging


@click.group("trainer", cls=StreamscoreGroup)
@config_option
def trainer() -> None:
    """Retraining: an HTTP service (POST /retrain) and a cron schedule."""


@trainer.command()
@config_option
@pass_state
def serve(state: Any) -> None:
    """Serve POST /retrain, GET /jobs/<id>, /healthz and /metrics on [trainer] host:port."""
    from streamscore.http_common import HttpServer
    from training.service import build_trainer_app

    cfg = state.config
    setup_logging(cfg.worker.log_level)
    app, _runner = build_trainer_app(cfg)
    server = HttpServer(app, cfg.trainer.host, cfg.trainer.port)
    server.start()
    console.print(
        f"trainer on http://{cfg.trainer.host}:{server.port} (POST /retrain with a token)"
    )
    if not cfg.http.admin_token:
        console.print("[yellow]no [http] admin_token set: /retrain answers 403[/]")
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    stop.wait()
    server.stop()


@trainer.command()
@config_option
@click.option("--max-runs", type=click.IntRange(min=1), default=None, help="exit after N runs")
@pass_state
def schedule(state: Any, max_runs: int | None) -> None:
    """Train on [training.schedule] cron; log each run's verdict."""
    from training.schedule import Schedule

    cfg = state.config
    setup_logging(cfg.worker.log_level)
    plan = Schedule(cfg)
    upcoming = plan.next_run().isoformat(timespec="seconds")
    console.print(f"training on cron {plan.cron!r}; next run at {upcoming}")

    def handler(_signum: int, _frame: FrameType | None) -> None:
        plan.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    for job in plan.run(max_runs=max_runs):
        console.print(f"{job.id}: {job.status} v{job.version} {escape(job.error)}", highlight=False)
