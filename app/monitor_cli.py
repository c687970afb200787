"""``streamscore monitor`` (also ``python -m monitor``): the model-quality service."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from app.clitools import State, config_option, pass_state, setup_logging

log = logging.getLogger("monitor")


@click.command("monitor")
@config_option
@pass_state
def monitor(state: State) -> None:
    """Join predictions with delayed labels; live metrics per version; automatic rollback.

    Reads [kafka] output_topic and labels_topic in its own group ([monitor] group_id), keeps
    the join state in [monitor] state_path, publishes per-window quality to [kafka]
    quality_topic, serves /metrics on [monitor] host:port, and rolls [model_store] alias back
    when production is worse than before ([monitor] auto_rollback = false only reports).
    """
    from monitor.service import MonitorService

    cfg = state.config
    setup_logging(cfg.worker.log_level, file=cfg.worker.log_dir / "monitor.log")
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping after the batch in flight", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    MonitorService(cfg).run(stop)
