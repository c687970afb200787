"""Training jobs run in the background: one at a time, persisted as JSON in ``jobs_dir``."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streamscore import jsonio
from streamscore.config import Config
from streamscore.exceptions import StreamscoreError

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 200

#: What :meth:`JobRunner.submit` hands out: 12 lowercase hex digits (``uuid4().hex[:12]``).
JOB_ID = re.compile(r"[0-9a-f]{12}")


def is_job_id(text: str) -> bool:
    """True when ``text`` has the form of a job id. Anything else names no job, and is never
    turned into a path (a 300-character id used to reach the file system: ENAMETOOLONG)."""
    return JOB_ID.fullmatch(text) is not None


@dataclass
class Job:
    id: str
    trigger: str  # api | schedule
    # queued | running | promoted | registered | unchanged | gate_failed | failed
    status: str = "queued"
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    version: int | None = None
    promoted: bool = False
    verdict: dict[str, Any] | None = None
    error: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status not in ("queued", "running")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobBusy(StreamscoreError):
    """A training run is already in progress."""


class JobRunner:
    """Runs training jobs one at a time in a background thread, recording each to disk."""

    def __init__(self, cfg: Config, *, on_finish: Any = None) -> None:
        self.cfg = cfg
        self.folder = Path(cfg.trainer.jobs_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._thread: threading.Thread | None = None
        self.on_finish = on_finish

    def submit(self, trigger: str = "api") -> Job:
        with self._lock:
            if self._current is not None and not self._current.done:
                raise JobBusy(f"training job {self._current.id} is still {self._current.status}")
            job = Job(id=uuid.uuid4().hex[:12], trigger=trigger)
            self._current = job
            self._save(job)
            self._thread = threading.Thread(target=self.run, args=(job,), daemon=True)
            self._thread.start()
            return job

    def wait(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None for an unknown id or a text that is not a job id."""
        if not is_job_id(job_id):
            return None
        if self._current is not None and self._current.id == job_id:
            return self._current
        try:
            return Job(**jsonio.loads((self.folder / f"{job_id}.json").read_bytes()))
        except FileNotFoundError:
            return None

    def run(self, job: Job) -> Job:
        """Run one job in this thread (the schedule calls this directly)."""
        from training.run import GateRefused, Unchanged, train

        lines: deque[str] = deque(maxlen=LOG_TAIL_LINES)

        def note(message: str) -> None:
            stamp = time.strftime("%H:%M:%S")
            lines.append(f"{stamp} {message}")
            job.log = list(lines)
            self._save(job)

        job.status = "running"
        job.started_at = time.time()
        note(f"job {job.id} started ({job.trigger})")
        try:
            result = train(
                self.cfg, promote=True, progress=False, on_step=lambda s: note(f"step {s}")
            )
        except Unchanged as exc:
            job.status = "unchanged"
            job.version = exc.manifest.version
            note(str(exc))
        except GateRefused as exc:
            job.status = "gate_failed"
            job.error = str(exc)
            job.verdict = exc.result.verdict.to_dict()
            job.version = exc.result.manifest.version
            note(f"gate failed: {exc}")
        except StreamscoreError as exc:
            job.status = "failed"
            job.error = str(exc)
            note(f"failed: {exc}")
        except Exception as exc:
            job.status = "failed"
            job.error = f"{type(exc).__name__}: {exc}"
            log.exception("training job %s crashed", job.id)
            note(f"crashed: {job.error}")
        else:
            job.version = result.manifest.version
            job.promoted = result.promoted
            job.verdict = result.verdict.to_dict()
            job.status = "promoted" if result.promoted else "registered"
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()))
            note(f"{result.manifest.label}: {metrics}")
            note(f"{job.status} {result.manifest.label}")
        job.finished_at = time.time()
        self._save(job)
        log.info("training job %s: %s %s", job.id, job.status, job.error)
        if self.on_finish is not None:
            self.on_finish(job)
        return job

    def _save(self, job: Job) -> None:
        path = self.folder / f"{job.id}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(jsonio.dumps_pretty(job.to_dict()))
        os.replace(tmp, path)
