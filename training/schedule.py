"""Retrain on a cron expression: ``streamscore trainer schedule``."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from croniter import croniter

from streamscore.config import Config
from streamscore.exceptions import ConfigError
from training.jobs import Job, JobRunner

log = logging.getLogger(__name__)


def parse_cron(expression: str) -> str:
    """Five fields (minute hour day month weekday), or six with seconds last."""
    if not croniter.is_valid(expression):
        raise ConfigError(
            f"[training.schedule] cron = {expression!r} is not a cron expression; "
            f"e.g. '0 3 * * *' (daily at 03:00) or '*/15 * * * *'"
        )
    return expression


class Schedule:
    def __init__(self, cfg: Config, *, runner: JobRunner | None = None) -> None:
        self.cfg = cfg
        self.cron = parse_cron(cfg.training.schedule.cron)
        self.runner = runner or JobRunner(cfg)
        self._stop = threading.Event()
        self.jobs: list[Job] = []

    def stop(self) -> None:
        self._stop.set()

    def next_run(self, after: dt.datetime | None = None) -> dt.datetime:
        base = after or dt.datetime.now()
        nxt: dt.datetime = croniter(self.cron, base).get_next(dt.datetime)
        return nxt

    def run(self, *, max_runs: int | None = None) -> list[Job]:
        """Sleep until each cron time, train, log the verdict; until stopped or max_runs."""
        if not self.cfg.training.schedule.enabled:
            log.warning("[training.schedule] enabled = false: nothing scheduled")
            return self.jobs
        while not self._stop.is_set():
            when = self.next_run()
            log.info(
                "next training run at %s (cron %r)", when.isoformat(timespec="seconds"), self.cron
            )
            delay = (when - dt.datetime.now()).total_seconds()
            if self._stop.wait(max(delay, 0)):
                break
            job = self.runner.run(Job(id=f"sched{int(when.timestamp())}", trigger="schedule"))
            self.jobs.append(job)
            log.info("scheduled run %s: %s %s", job.id, job.status, job.error)
            if max_runs is not None and len(self.jobs) >= max_runs:
                break
        return self.jobs
