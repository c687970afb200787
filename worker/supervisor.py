"""Run N scoring workers as separate processes; restart a crashed one; stop all on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamscore import jsonio
from streamscore.config import Config

log = logging.getLogger(__name__)


@dataclass
class Child:
    index: int
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0


class Supervisor:
    """Keeps ``processes`` members of the consumer group running.

    Each child is ``python -m worker run --index I`` with the same config file; it logs to
    ``<log_dir>/worker-I.log`` and to the supervisor's stderr. The child pids are written to
    ``<log_dir>/supervisor.json`` for operators (and tests).
    """

    def __init__(
        self, cfg: Config, config_path: Path, processes: int, *, stop_timeout_s: float = 60.0
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.processes = processes
        self.stop_timeout_s = stop_timeout_s
        self.children: dict[int, Child] = {}
        self._stop = threading.Event()
        self.state_file = cfg.worker.log_dir / "supervisor.json"

    def stop(self) -> None:
        self._stop.set()

    def _spawn(self, index: int, restarts: int = 0) -> Child:
        cmd = [
            sys.executable,
            "-m",
            "worker",
            "run",
            "--index",
            str(index),
            "--config",
            str(self.config_path),
        ]
        process = subprocess.Popen(cmd)
        log.info(
            "started worker %d (pid %d), logs: %s",
            index,
            process.pid,
            self.cfg.worker.log_dir / f"worker-{index}.log",
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
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_bytes(jsonio.dumps_pretty(state))
        os.replace(tmp, self.state_file)

    def run(self) -> int:
        for index in range(self.processes):
            self._spawn(index)
        backoff_s = self.cfg.worker.restart_backoff_ms / 1000
        restart_at: dict[int, float] = {}
        while not self._stop.is_set():
            for index, child in list(self.children.items()):
                code = child.process.poll()
                if code is None or index in restart_at:
                    continue
                log.warning(
                    "worker %d (pid %d) exited with %s; restarting in %.1fs",
                    index,
                    child.process.pid,
                    _describe_exit(code),
                    backoff_s,
                )
                restart_at[index] = time.monotonic() + backoff_s
            for index, when in list(restart_at.items()):
                if time.monotonic() >= when:
                    del restart_at[index]
                    self._spawn(index, self.children[index].restarts + 1)
            self._stop.wait(0.2)
        return self._shutdown()

    def _shutdown(self) -> int:
        log.info("stopping %d worker(s)", len(self.children))
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for child in self.children.values():
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in time; killing it", child.index)
                child.process.kill()
                child.process.wait()
        self.state_file.unlink(missing_ok=True)
        log.info("all workers stopped")
        return 0


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
