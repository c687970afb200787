"""Any sequence of clean stops, SIGTERMs, kill -9 and restarts on one group leaves every worker
ready within 2 x the session timeout, and every event scored (committed offsets kept)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streamscore import jsonio
from streamscore.kafka_admin import consumer_lag
from tests.kafka_helpers import consume_all, produce, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PROCESSES = 2
SESSION_TIMEOUT_MS = 6000
STEPS = 10
#: Bound on a process start (imports and model load included) on a loaded test machine.
START_BOUND_S = 120


class Fleet:
    """One supervisor at a time (``streamscore worker -n 2``) and what it started."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.supervisor: subprocess.Popen[bytes] | None = None
        self.log_dir: Path = cfg.worker.log_dir
        self.state_file = self.log_dir / "supervisor.json"

    def start(self) -> None:
        assert self.supervisor is None
        self.state_file.unlink(missing_ok=True)  # a killed supervisor leaves its file behind
        self.supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamscore",
                "--config",
                str(self.cfg.source),
                "worker",
                "-n",
                str(PROCESSES),
            ]
        )

    def children(self) -> dict[int, int]:
        state = jsonio.loads(self.state_file.read_bytes())
        assert state["supervisor_pid"] == self.supervisor.pid
        return {int(i): c["pid"] for i, c in state["children"].items()}

    def stop(self) -> None:
        assert self.supervisor is not None
        self.supervisor.send_signal(signal.SIGTERM)
        assert self.supervisor.wait(timeout=10) == 0
        self.supervisor = None

    def kill_supervisor(self) -> None:
        assert self.supervisor is not None
        pids = list(self.children().values())
        self.supervisor.kill()
        self.supervisor.wait()
        self.supervisor = None
        wait_until(lambda: not any(_alive(p) for p in pids), 10, "orphans to stop")

    def signal_child(self, index: int, sig: signal.Signals) -> None:
        pid = self.children()[index]
        os.kill(pid, sig)
        wait_until(lambda: self.children()[index] != pid, 20, f"worker {index} to be restarted")

    def join_seconds(self, index: int, pid: int) -> float | None:
        """Seconds from process ``pid`` (worker ``index``) serving its model to owning its
        partitions (the group's part of getting ready), or None while it owns nothing."""
        log = self.log_dir / f"worker-{index}.log"
        if not log.exists():
            return None
        serving_at = None
        for line in log.read_text().splitlines():
            if " serving " in line:
                serving_at = _stamp(line)
            elif f"-{pid}-{index} owns " in line and not line.endswith(" owns none"):
                return _stamp(line) - serving_at if serving_at is not None else None
        return None

    def joins(self) -> dict[int, float] | None:
        """``index -> join seconds`` once every current worker owns partitions, else None."""
        try:
            children = self.children()
        except (OSError, ValueError, AssertionError):  # not written yet by this supervisor
            return None
        if len(children) != PROCESSES:
            return None
        joins = {i: self.join_seconds(i, pid) for i, pid in children.items()}
        if any(j is None for j in joins.values()):
            return None
        return {i: j for i, j in joins.items() if j is not None}

    def all_ready(self) -> bool:
        return self.joins() is not None

    def close(self) -> None:
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.supervisor.kill()
                self.supervisor.wait()


def _stamp(line: str) -> float:
    """Seconds since the epoch of a log line's ``2026-12-01 23:16:28,435`` prefix."""
    return time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.timeout(1500)  # ten process restarts: each imports scikit-learn and loads a model
def test_random_stops_kills_and_restarts_leave_every_worker_ready_and_every_event_scored(
    config_factory, register, demo_set
):
    cfg = config_factory(
        kafka={"session_timeout_ms": SESSION_TIMEOUT_MS, "heartbeat_interval_ms": 2000},
        worker={
            "assignment": "supervisor",
            "restart_backoff_ms": 200,
            "max_restart_backoff_ms": 1000,
            "min_uptime_ms": 1000,
            "max_restarts": 100,
        },
    )
    register()
    published: list[str] = []
    stop_publishing = threading.Event()

    def publish() -> None:
        n = 0
        while not stop_publishing.is_set():
            batch = [demo_set.event(i % 500, id=f"r-{n + i}") for i in range(40)]
            produce(cfg.kafka, batch)
            published.extend(e["id"] for e in batch)
            n += len(batch)
            time.sleep(0.2)

    fleet = Fleet(cfg)
    publisher = threading.Thread(target=publish, daemon=True)
    rng = random.Random(20261201)
    ready_within_s = 2 * SESSION_TIMEOUT_MS / 1000
    took: list[tuple[str, float]] = []
    try:
        fleet.start()
        wait_until(fleet.all_ready, START_BOUND_S, "the first start (imports, model load)")
        publisher.start()
        for _ in range(STEPS):
            step = rng.choice(["clean stop", "SIGTERM child", "kill -9 child", "kill supervisor"])
            index = rng.randrange(PROCESSES)
            if step == "clean stop":
                fleet.stop()
                time.sleep(rng.uniform(0.5, 3.0))
                fleet.start()
            elif step == "kill supervisor":
                fleet.kill_supervisor()
                time.sleep(rng.uniform(0.5, 3.0))
                fleet.start()
            elif step == "SIGTERM child":
                fleet.signal_child(index, signal.SIGTERM)
            else:
                fleet.signal_child(index, signal.SIGKILL)
            # Ready: a process start (interpreter, imports, model load) takes seconds on an
            # idle machine and much longer on a loaded one, so it gets a wide bound; the group's
            # part, from serving a model to owning partitions, must stay within 2 x session.
            wait_until(fleet.all_ready, START_BOUND_S, f"every worker ready after {step}")
            joins = fleet.joins()
            assert joins is not None
            worst = max(joins.values())
            assert worst <= ready_within_s, f"after {step}: partitions after {joins} s"
            took.append((step, worst))
            print(
                f"step {len(took)}: {step} (worker {index}): partitions {worst:.2f} s after model"
            )
        stop_publishing.set()
        publisher.join()
        # Every input offset committed means every output before it was acknowledged.
        wait_until(
            lambda: (
                not any(consumer_lag(cfg.kafka, cfg.kafka.group_id, cfg.kafka.input_topic).values())
            ),
            180,
            "the group to commit every input offset",
        )
        outputs = consume_all(
            cfg.kafka, cfg.kafka.output_topic, len(published), 60, settle_s=2, strict=False
        )
        scored = {r.value["id"] for r in outputs}
        missing = set(published) - scored
        assert not missing, f"{len(missing)} of {len(published)} lost: {sorted(missing)[:5]}"
        assert len({s for s, _ in took}) >= 3, took  # the seed exercises most kinds of step
    finally:
        stop_publishing.set()
        fleet.close()
    print("model -> partitions after each step:", ", ".join(f"{s} {t:.2f}s" for s, t in took))
