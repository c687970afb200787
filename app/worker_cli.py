"""``streamscore worker``: run scoring workers."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import click

from app.clitools import StreamscoreGroup, config_option, pass_state, setup_logging
from streamscore.config import resolve_config_path
from worker.lean import limit_model_threads, skip_pandas

log = logging.getLogger("worker")


def _install_stop_handlers(stop: object) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info(
            "received %s: finishing the batch in flight, then stopping", signal.Signals(signum).name
        )
        stop()  # type: ignore[operator]

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command("worker")
@config_option
@click.option(
    "--processes",
    "-n",
    type=click.IntRange(1, 256),
    default=None,
    help="consumer-group members to run as processes (default: [worker] processes)",
)
@pass_state
def worker(state: object, processes: int | None) -> None:
    """Score events: run N workers under a supervisor that restarts crashed ones."""
    from worker.supervisor import Supervisor

    cfg = state.config  # type: ignore[attr-defined]
    setup_logging(cfg.worker.log_level, file=cfg.worker.log_dir / "supervisor.log")
    path = resolve_config_path(state.config_path)  # type: ignore[attr-defined]
    if cfg.worker.delivery == "exactly-once":
        from worker.membership import plan_membership

        plan_membership(cfg, 0)  # refused here once, not by every child in a restart loop
    supervisor = Supervisor(cfg, path, processes or cfg.worker.processes)
    _install_stop_handlers(supervisor.stop)
    sys.exit(supervisor.run())


@click.command("run")
@config_option
@click.option("--index", type=click.IntRange(0, 10_000), default=0, help="member number")
@pass_state
def run_one(state: object, index: int) -> None:
    """Run one worker in this process (what the supervisor starts)."""
    cfg = state.config  # type: ignore[attr-defined]
    threads = limit_model_threads(cfg.worker.model_threads)
    skipped = [] if cfg.worker.import_pandas else skip_pandas()
    from worker.runner import WorkerProcess

    setup_logging(cfg.worker.log_level, file=cfg.worker.log_dir / f"worker-{index}.log")
    if skipped:
        log.info("not loading %s in this process ([worker] import_pandas = false)", skipped)
    if threads:
        log.info("model threads: %d per process ([worker] model_threads)", cfg.worker.model_threads)
    scoring = WorkerProcess(cfg, index=index)
    _install_stop_handlers(scoring.stop)
    log.info("worker %d starting (pid logs: %s)", index, cfg.worker.log_dir / f"worker-{index}.log")
    scoring.run()


@click.group("worker", cls=StreamscoreGroup)
@config_option
def group() -> None:
    """Scoring workers (python -m worker)."""


group.add_command(worker, "supervise")
group.add_command(run_one, "run")
