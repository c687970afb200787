"""The supervisor: backoff and give-up, one per log folder, SIGTERM in every state."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker import free_port
from streamscore import jsonio
from tests.kafka_helpers import wait_until

pytestmark = [pytest.mark.slow]


def supervise(cfg, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamscore", "--config", str(cfg.source), "worker", *args],
        stderr=subprocess.PIPE,
        text=True,
    )


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def children_of(cfg) -> list[int]:
    state = jsonio.loads((cfg.worker.log_dir / "supervisor.json").read_bytes())
    return [c["pid"] for c in state["children"].values()]


def stopped_within(process: subprocess.Popen[str], seconds: float) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=seconds + 10)
    return time.monotonic() - started


def dead_bootstrap_config(config_factory, **worker):
    return config_factory(
        create_topics=False,
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
        worker={"restart_backoff_ms": 300, "max_restart_backoff_ms": 5000, **worker},
    )


def test_supervisor_gives_up_on_a_dead_bootstrap_address_with_backoff_and_the_reason(
    config_factory,
):
    cfg = dead_bootstrap_config(config_factory, max_restarts=3)
    address = cfg.kafka.bootstrap_servers
    started = time.monotonic()
    supervisor = supervise(cfg)
    reason_file = cfg.worker.log_dir / "worker-0.exit"
    # The check itself answers within 5 s (tests/streamscore/test_preflight.py); here the bound
    # also covers starting two interpreters, which takes seconds on a loaded test machine. The
    # Kafka client alone took 31 s to report this address.
    wait_until(reason_file.exists, 20, "the first worker to report the dead address")
    assert time.monotonic() - started < 20.0
    assert address in reason_file.read_text() and "connection refused" in reason_file.read_text()
    _out, err = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 2
    log = (cfg.worker.log_dir / "supervisor.log").read_text()
    # Each distinct reason once, then the give-up line with the last reason.
    assert log.count("connection refused") == 2, log
    assert re.search(
        r"giving up after \[worker\] max_restarts = 3\. Last reason: .*" + address, log
    )
    assert "giving up" in err
    # Exponential backoff: 0.3, 0.6, 1.2 s, as announced, and at least that between starts.
    delays = [float(d) for d in re.findall(r"restarting in ([0-9.]+) s", log)]
    assert delays == [0.3, 0.6, 1.2], log
    stamps = [
        time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
        for line in log.splitlines()
        if "started worker 0" in line
    ]
    assert len(stamps) == 4
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=True)), gaps


def test_a_child_that_started_well_resets_its_failure_count(config_factory):
    # A worker waiting for a model stays up; each kill after min_uptime_ms is a first failure.
    cfg = config_factory(
        worker={"min_uptime_ms": 500, "max_restarts": 1, "restart_backoff_ms": 100}
    )
    supervisor = supervise(cfg)
    try:
        state_file = cfg.worker.log_dir / "supervisor.json"
        wait_until(state_file.exists, 20, "the supervisor to start its child")
        for _ in range(3):
            victim = children_of(cfg)[0]
            time.sleep(1.0)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda v=victim: children_of(cfg)[0] != v, 10, "the restart")
        assert supervisor.poll() is None
    finally:
        assert stopped_within(supervisor, 5) < 5.0
    assert supervisor.returncode == 0


def test_a_second_supervisor_refuses_to_start_naming_the_first_and_deletes_nothing(
    config_factory,
):
    cfg = config_factory()
    first = supervise(cfg)
    try:
        state_file = cfg.worker.log_dir / "supervisor.json"
        wait_until(state_file.exists, 20, "the first supervisor to start its child")
        before = state_file.read_bytes()
        second = supervise(cfg, "-n", "2")
        _out, err = second.communicate(timeout=30)
        assert second.returncode == 2
        assert f"another supervisor (pid {first.pid})" in err
        assert "log_dir" in err
        assert state_file.read_bytes() == before
        assert all(alive(pid) for pid in children_of(cfg))
        assert not (cfg.worker.log_dir / "worker-1.log").exists()
    finally:
        assert stopped_within(first, 5) < 5.0
    assert not state_file.exists()


def test_supervisor_assignment_allows_one_supervisor_per_group_whatever_the_log_folder(
    config_factory,
):
    cfg = config_factory(worker={"assignment": "supervisor"})
    other = config_factory(
        name="other.toml", worker={"assignment": "supervisor", "log_dir": "log2"}
    )
    first = supervise(cfg)
    try:
        wait_until((cfg.worker.log_dir / "supervisor.json").exists, 20, "the first supervisor")
        second = supervise(other)
        _out, err = second.communicate(timeout=30)
        assert second.returncode == 2
        assert f"another supervisor (pid {first.pid})" in err and cfg.kafka.group_id in err
    finally:
        assert stopped_within(first, 5) < 5.0


@pytest.mark.parametrize("state", ["starting", "running", "waiting to restart"])
def test_sigterm_stops_the_supervisor_and_its_children_within_5_s(config_factory, state):
    if state == "waiting to restart":
        cfg = dead_bootstrap_config(
            config_factory, restart_backoff_ms=60_000, max_restart_backoff_ms=60_000
        )
    else:
        cfg = config_factory()
    supervisor = supervise(cfg, "-n", "2")
    try:
        state_file = cfg.worker.log_dir / "supervisor.json"
        wait_until(state_file.exists, 20, "the supervisor to start its children")
        pids = children_of(cfg)
        if state == "running":
            for i in range(2):
                log = cfg.worker.log_dir / f"worker-{i}.log"
                wait_until(lambda f=log: f.exists() and "starting" in f.read_text(), 90, "workers")
        elif state == "waiting to restart":
            log = cfg.worker.log_dir / "supervisor.log"
            wait_until(lambda: "restarting in 60.0 s" in log.read_text(), 20, "a pending restart")
        took = stopped_within(supervisor, 5)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
    assert supervisor.returncode == 0
    assert took < 5.0, f"SIGTERM took {took:.1f} s while {state}"
    assert not any(alive(pid) for pid in pids)


def test_children_stop_when_their_supervisor_is_killed(config_factory):
    cfg = config_factory()
    supervisor = supervise(cfg, "-n", "2")
    wait_until((cfg.worker.log_dir / "supervisor.json").exists, 20, "the children")
    pids = children_of(cfg)
    supervisor.kill()
    supervisor.wait()
    wait_until(lambda: not any(alive(pid) for pid in pids), 10, "the orphaned children to stop")
