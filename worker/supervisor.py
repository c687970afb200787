"""Run N scoring workers as separate processes; restart a failing one; stop all on SIGTERM.

What it guarantees (README "Scaling out", "Failure cases"):

* **One supervisor per log folder** (and, with ``[worker] assignment = "supervisor"``, per
  consumer group on this host): a lock file names the pid that holds it; a second supervisor
  refuses to start and names that pid. The kernel releases the lock when its holder dies, so a
  killed supervisor never blocks the next one. Nothing here deletes state another supervisor
  wrote.
* **Restarts with exponential backoff**: ``restart_backoff_ms`` doubling per consecutive
  failure up to ``max_restart_backoff_ms``. A child that stayed up ``min_uptime_ms`` started
  well and resets its count. Each distinct exit reason is logged once (at WARNING, with the
  reason the child wrote); repeats get a short line. After ``max_restarts`` consecutive
  failures of one child the supervisor stops the others and exits 2 with the last reason.
  A child that exits with ``EXIT_CONFLICT`` (another process uses its static member name) is
  not restarted: the supervisor stops the others and exits 2 at once.
* **SIGTERM/SIGINT stop everything within** ``stop_timeout_ms`` (+ ~0.2 s) in every state:
  starting, running, waiting to restart. Children that do not finish in time are killed.
* **Children die with it**: each child is told the supervisor's pid and stops when its parent
  goes away (kill -9 of the supervisor leaves no orphan scoring the same partitions).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from streamscore import jsonio
from streamscore.config import Config
from streamscore.exceptions import EXIT_CONFLICT, StreamscoreError

log = logging.getLogger(__name__)

#: Exit code of a supervisor that gave up on a child (a streamscore error).
EXIT_GAVE_UP = 2


class SupervisorBusy(StreamscoreError):
    """Another supervisor already runs with this log folder or consumer group."""


def exit_reason_file(log_dir: Path, index: int) -> Path:
    """Where child ``index`` writes why it is exiting with an error (read by the supervisor)."""
    return log_dir / f"worker-{index}.exit"


class PidLock:
    """An exclusive ``flock`` on ``path`` whose content names the holder's pid.

    ``flock`` locks die with their process, so a stale file never blocks; the content is only
    read to name the holder in the refusal.
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._file: IO[str] | None = None

    def acquire(self, fix: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise SupervisorBusy(
                f"another supervisor (pid {holder}) already runs {self.what} (lock "
                f"{self.path}); stop it first (kill {holder}), or {fix}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # releases the flock; the file stays (it is harmless)
            self._file = None


@dataclass
class Child:
    index: int
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0


@dataclass
class Failures:
    """Consecutive failures of one child since its last good start."""

    count: int = 0
    last_reason: str = ""
    restart_at: float | None = None
    reasons_seen: set[str] = field(default_factory=set)


class Supervisor:
    """Keeps ``processes`` workers running.

    Each child is ``python -m worker run --index I --members N --parent-pid P`` with the same
    config file; it logs to ``<log_dir>/worker-I.log`` and to the supervisor's stderr. The
    child pids are written to ``<log_dir>/supervisor.json`` for operators (and tests).
    """

    def __init__(
        self,
        cfg: Config,
        config_path: Path,
        processes: int,
        *,
        stop_timeout_s: float | None = None,
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.processes = processes
        w = cfg.worker
        self.stop_timeout_s = (
            stop_timeout_s if stop_timeout_s is not None else w.stop_timeout_ms / 1000
        )
        self.children: dict[int, Child] = {}
        self.failures: dict[int, Failures] = {}
        self._stop = threading.Event()
        self.log_dir = w.log_dir
        self.state_file = self.log_dir / "supervisor.json"
        self._locks = [
            PidLock(self.log_dir / "supervisor.lock", f"with the log folder {self.log_dir}")
        ]
        if w.assignment == "supervisor":
            k = cfg.kafka
            digest = hashlib.sha256(f"{k.bootstrap_servers}\0{k.group_id}".encode()).hexdigest()
            folder = Path(tempfile.gettempdir()) / f"streamscore-{os.getuid()}"
            self._locks.append(
                PidLock(
                    folder / f"group-{digest[:16]}.lock",
                    f"group {k.group_id!r} on {k.bootstrap_servers} with [worker] assignment = "
                    f'"supervisor"',
                )
            )

    def stop(self) -> None:
        """Ask :meth:`run` to stop every child and return. Signal-safe."""
        self._stop.set()

    # ------------------------------------------------------------------ children

    def _spawn(self, index: int, restarts: int = 0) -> Child:
        exit_reason_file(self.log_dir, index).unlink(missing_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "worker",
            "run",
            "--index",
            str(index),
            "--members",
            str(self.processes),
            "--parent-pid",
            str(os.getpid()),
            "--config",
            str(self.config_path),
        ]
        process = subprocess.Popen(cmd, preexec_fn=die_with_parent(os.getpid()))
        log.info(
            "started worker %d (pid %d), logs: %s",
            index,
            process.pid,
            self.log_dir / f"worker-{index}.log",
        )
        child = Child(index, process, time.monotonic(), restarts)
        self.children[index] = child
        self._write_state()
        return child

    def _write_state(self) -> None:
        state: dict[str, Any] = {
            "supervisor_pid": os.getpid(),
            "children": {
                str(c.index): {"pid": c.process.pid, "restarts": c.restarts}
                for c in self.children.values()
            },
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        tmp.write_bytes(jsonio.dumps_pretty(state))
        os.replace(tmp, self.state_file)

    def _reason(self, child: Child, code: int) -> str:
        """Why a child exited: what it wrote before exiting, else its exit status."""
        path = exit_reason_file(self.log_dir, child.index)
        try:
            written = path.read_text(encoding="utf-8").strip()
        except OSError:
            written = ""
        status = _describe_exit(code)
        return f"{written} ({status})" if written else status

    def _on_exit(self, child: Child, code: int) -> bool:
        """Schedule a restart; False when this child failed ``max_restarts`` times in a row."""
        w = self.cfg.worker
        now = time.monotonic()
        failures = self.failures.setdefault(child.index, Failures())
        uptime_s = now - child.started_at
        if uptime_s * 1000 >= w.min_uptime_ms:
            failures.count = 0  # it had started well: this is a new run of failures
        failures.count += 1
        reason = self._reason(child, code)
        failures.last_reason = reason
        if code == EXIT_CONFLICT:  # another process holds its identity: a restart cannot help
            log.error(
                "worker %d (pid %d) stopped on a conflict a restart cannot fix; not restarting "
                "it. %s",
                child.index,
                child.process.pid,
                reason,
            )
            return False
        if failures.count > w.max_restarts:
            log.error(
                "worker %d failed %d time(s) in a row without a good start (up less than "
                "%.1f s, [worker] min_uptime_ms); giving up after [worker] max_restarts = %d. "
                "Last reason: %s",
                child.index,
                failures.count,
                w.min_uptime_ms / 1000,
                w.max_restarts,
                reason,
            )
            return False
        delay_s = (
            min(w.restart_backoff_ms * 2 ** (failures.count - 1), w.max_restart_backoff_ms) / 1000
        )
        failures.restart_at = now + delay_s
        if reason not in failures.reasons_seen:
            failures.reasons_seen.add(reason)
            log.warning(
                "worker %d (pid %d) exited after %.1f s: %s; restarting in %.1f s "
                "(failure %d of at most %d)",
                child.index,
                child.process.pid,
                uptime_s,
                reason,
                delay_s,
                failures.count,
                w.max_restarts,
            )
        else:
            log.info(
                "worker %d exited again (same reason); restarting in %.1f s (failure %d of at "
                "most %d)",
                child.index,
                delay_s,
                failures.count,
                w.max_restarts,
            )
        return True

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        """Supervise until stopped (0) or until a child failed too often (2)."""
        fix = "use another [worker] log_dir"
        if len(self._locks) > 1:
            fix += ' (and another [kafka] group_id, or [worker] assignment = "group")'
        for lock in self._locks:
            try:
                lock.acquire(fix)
            except SupervisorBusy:
                self._release()
                raise
        try:
            return self._supervise()
        finally:
            self._release()

    def _release(self) -> None:
        for lock in self._locks:
            lock.release()

    def _supervise(self) -> int:
        code = 0
        for index in range(self.processes):
            if self._stop.is_set():
                break
            self._spawn(index)
        while not self._stop.is_set():
            for index, child in list(self.children.items()):
                failures = self.failures.get(index)
                if failures is not None and failures.restart_at is not None:
                    if time.monotonic() >= failures.restart_at:
                        failures.restart_at = None
                        self._spawn(index, child.restarts + 1)
                    continue
                exit_code = child.process.poll()
                if exit_code is None:
                    continue
                if not self._on_exit(child, exit_code):
                    code = EXIT_GAVE_UP
                    self._stop.set()
                    break
            self._stop.wait(0.1)
        self._shutdown()
        return code

    def _shutdown(self) -> None:
        running = [c for c in self.children.values() if c.process.poll() is None]
        log.info("stopping %d worker(s)", len(running))
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for child in running:
            remaining = max(deadline - time.monotonic(), 0.05)
            try:
                child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                log.error(
                    "worker %d (pid %d) did not stop within %.1f s ([worker] stop_timeout_ms); "
                    "killing it",
                    child.index,
                    child.process.pid,
                    self.stop_timeout_s,
                )
                child.process.kill()
                child.process.wait()
        self._remove_own_state()
        log.info("all workers stopped")

    def _remove_own_state(self) -> None:
        """Remove ``supervisor.json`` only if it still names this supervisor."""
        try:
            state = jsonio.loads(self.state_file.read_bytes())
        except (OSError, ValueError):
            return
        if isinstance(state, dict) and state.get("supervisor_pid") == os.getpid():
            self.state_file.unlink(missing_ok=True)


def die_with_parent(parent_pid: int) -> Any:
    """A ``preexec_fn`` that makes the child get SIGTERM when this supervisor dies, even by
    kill -9 and even while the child is still importing (Linux ``PR_SET_PDEATHSIG``, which
    survives ``exec``). Elsewhere it does nothing, and the child's own watch (``--parent-pid``)
    stops it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the supervisor died between fork and prctl
            os._exit(1)

    return preexec


_PR_SET_PDEATHSIG = 1


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
