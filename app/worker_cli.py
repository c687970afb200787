"""``streamscore worker``: run scoring workers."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click
from rich.markup import escape

from app.clitools import (
    StreamscoreGroup,
    config_option,
    err_console,
    pass_state,
    setup_logging,
)
from streamscore.config import resolve_config_path
from streamscore.exceptions import EXIT_CONFLICT, StreamscoreError, WorkerConflict
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


def _stop_with_parent(parent_pid: int, stop: object) -> None:
    """Stop this worker when the supervisor that started it is gone (even after kill -9):
    the kernel sends SIGTERM on the parent's death (Linux), and a thread checks every 0.5 s
    elsewhere (and for the moment between fork and prctl)."""
    with_prctl = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            with_prctl = libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) == 0
        except (OSError, AttributeError):
            with_prctl = False

    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(0.5)
        log.warning("supervisor (pid %d) is gone: stopping", parent_pid)
        stop()  # type: ignore[operator]

    if os.getppid() != parent_pid:
        stop()  # type: ignore[operator]
    if not with_prctl or os.getppid() != parent_pid:
        threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _write_exit_reason(log_dir: Path, index: int, reason: str) -> None:
    from worker.supervisor import exit_reason_file

    try:
        exit_reason_file(log_dir, index).write_text(reason + "\n", encoding="utf-8")
    except OSError:
        log.debug("could not record the exit reason", exc_info=True)


@click.command("run")
@config_option
@click.option("--index", type=click.IntRange(0, 10_000), default=0, help="member number")
@click.option(
    "--members",
    type=click.IntRange(1, 10_000),
    default=1,
    help='processes of this supervisor ([worker] assignment = "supervisor" splits by it)',
)
@click.option("--parent-pid", type=int, default=0, help="stop when this process is gone")
@pass_state
def run_one(state: object, index: int, members: int, parent_pid: int) -> None:
    """Run one worker in this process (what the supervisor starts)."""
    cfg = state.config  # type: ignore[attr-defined]
    threads = limit_model_threads(cfg.worker.model_threads)
    skipped = [] if cfg.worker.import_pandas else skip_pandas()
    log_dir = cfg.worker.log_dir
    setup_logging(cfg.worker.log_level, file=log_dir / f"worker-{index}.log")
    try:
        from streamscore.preflight import check_bootstrap

        check_bootstrap(cfg.kafka)
        from worker.runner import WorkerProcess

        if skipped:
            log.info("not loading %s in this process ([worker] import_pandas = false)", skipped)
        if threads:
            log.info(
                "model threads: %d per process ([worker] model_threads)", cfg.worker.model_threads
            )
        scoring = WorkerProcess(cfg, index=index, members=members)
        _install_stop_handlers(scoring.stop)
        if parent_pid:
            _stop_with_parent(parent_pid, scoring.stop)
        log.info("worker %d starting (logs: %s)", index, log_dir / f"worker-{index}.log")
        scoring.run()
    except WorkerConflict as exc:  # a restart cannot help: the supervisor will not restart it
        _write_exit_reason(log_dir, index, str(exc))
        log.error("worker %d stops: %s", index, exc)
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_CONFLICT)
    except StreamscoreError as exc:
        _write_exit_reason(log_dir, index, str(exc))
        raise
    except Exception as exc:
        _write_exit_reason(log_dir, index, f"{type(exc).__name__}: {exc}")
        log.exception("worker %d crashed", index)
        raise


@click.group("worker", cls=StreamscoreGroup)
@config_option
def group() -> None:
    """Scoring workers (python -m worker)."""


group.add_command(worker, "supervise")
group.add_command(run_one, "run")
