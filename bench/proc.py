"""Child processes that are always reaped, progress lines, small statistics."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

_T0 = time.monotonic()


def say(message: str) -> None:
    """One progress line on stderr, with the time since the bench started."""
    print(f"[bench {time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


class Child:
    """A subprocess in its own session; ``stop()`` ends it (TERM, then KILL) and is idempotent."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.cmd = list(cmd)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def vm_hwm_kib(self) -> int | None:
        """Peak resident set size so far (``VmHWM``), while the process is alive."""
        return proc_status_kib(self.pid, "VmHWM")

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL. Returns the exit code."""
        try:
            if self.proc.poll() is None:
                _signal(self.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    _signal(self.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        finally:
            self._log.close()
        return self.proc.returncode

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal the child's process group (it was started in a session of its own)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (all its threads) so far."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


class CpuMeter:
    """CPU used (in cores) by some processes and this one, between ``start`` and ``stop``."""

    def __init__(self, **pids: list[int | None]) -> None:
        self.pids = pids
        self._t0 = 0.0
        self._start: dict[str, float | None] = {}

    def _sample(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {"bench": time.process_time()}
        for name, pids in self.pids.items():
            values = [cpu_seconds(p) for p in pids]
            out[name] = None if not values or None in values else sum(v or 0.0 for v in values)
        return out

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = self._sample()

    def stop(self) -> dict[str, float | None]:
        """``{name: cores}`` (CPU seconds / wall seconds) since ``start``."""
        wall = time.monotonic() - self._t0
        end = self._sample()
        out: dict[str, float | None] = {}
        for name, value in end.items():
            begin = self._start.get(name)
            out[name] = (
                round((value - begin) / wall, 2)
                if value is not None and begin is not None and wall > 0
                else None
            )
        return out


def proc_status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_child(
    cmd: Sequence[str], *, log_path: Path, timeout_s: float, env: dict[str, str] | None = None
) -> tuple[int | None, str]:
    """Run to completion within ``timeout_s`` (killed after); returns (exit code, log tail)."""
    child = Child(cmd, log_path=log_path, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while child.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        timed_out = child.alive()
    finally:
        code = child.stop(grace_s=5.0)
    if timed_out:
        return None, child.tail()
    return code, child.tail()


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.median(kept)) if kept else None


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> list[float]:
    if not values:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(np.asarray(values, dtype=np.float64), qs)]


def warmup_rate(
    checkpoints: Sequence[tuple[float, int]],
    planned: int,
    warmup_s: float = 2.0,
    *,
    not_before: float | None = None,
) -> dict[str, Any]:
    """Events/s after a warm-up, from ``(time_s, events done so far)`` checkpoints.

    Warm-up: the first ``warmup_s`` seconds after the first checkpoint, or the first 10 % of
    the ``planned`` events, whichever ends first; and, if given, everything up to
    ``not_before`` (e.g. the last consumer-group rebalance). The rate is the events done after
    the warm-up's last checkpoint divided by the time from that checkpoint to the last one.
    """
    points = sorted(checkpoints)
    if len(points) < 2:
        done = points[-1][1] if points else 0
        return {"rate": None, "events": done, "measured_events": 0, "seconds": 0.0}
    t_first = points[0][0]
    cut = len(points) - 2
    for index, (t, n) in enumerate(points):
        if t - t_first >= warmup_s or n >= max(planned // 10, 1):
            cut = min(index, len(points) - 2)
            break
    if not_before is not None:
        while cut < len(points) - 2 and points[cut][0] < not_before:
            cut += 1
    t_start, n_start = points[cut]
    t_end, n_end = points[-1]
    seconds = t_end - t_start
    measured = n_end - n_start
    return {
        "rate": measured / seconds if seconds > 0 and measured > 0 else None,
        "events": n_end,
        "measured_events": measured,
        "seconds": round(seconds, 3),
        "warmup_events": n_start,
    }
