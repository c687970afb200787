"""Worker processes on a real broker: kill -9, SIGTERM, supervisor restarts, hot swap, scaling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from streamscore import jsonio
from tests.conftest import PythonProcesses, worker_run
from tests.kafka_helpers import produce, read, wait_until
from worker.service import ScoringWorker

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def spawn(python_processes: PythonProcesses) -> Callable[..., subprocess.Popen[bytes]]:
    def start(cfg, *args: str) -> subprocess.Popen[bytes]:
        return python_processes.start(cfg, *(args or worker_run(len(python_processes.started))))

    return start


def publish_at_rate(kafka, events, rate: float) -> threading.Thread:
    def run() -> None:
        chunk = max(int(rate / 10), 1)
        for start in range(0, len(events), chunk):
            produce(kafka, events[start : start + chunk])
            time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def owned(log_file: Path) -> list[str]:
    """The partitions a worker said it owns in its latest ``owns`` log line."""
    if not log_file.exists():
        return []
    lines = [line for line in log_file.read_text().splitlines() if " owns " in line]
    if not lines:
        return []
    tail = lines[-1].split(" owns ", 1)[1]
    return [] if tail.strip() == "none" else [p.strip() for p in tail.split(",")]


def group_is_stable(cfg, members: int) -> bool:
    shares = [owned(cfg.worker.log_dir / f"worker-{i}.log") for i in range(members)]
    return all(shares) and sum(len(s) for s in shares) == cfg.kafka.partitions


def ids_of(results) -> list[str]:
    return [r.value["id"] for r in results]


@pytest.mark.parametrize("transport", ["kafka-python", "confluent-kafka"])
def test_kill_9_of_a_worker_mid_stream_loses_no_event(
    config_factory, register, demo_set, tmp_path, transport
):
    cfg = config_factory(kafka={"transport": transport})
    register()
    events = [demo_set.event(i % 500, id=f"k-{i}") for i in range(3000)]
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "streamscore", "--config", str(cfg.source), "worker", "-n", "2"]
    )
    try:
        state_file = cfg.worker.log_dir / "supervisor.json"
        wait_until(state_file.exists, 20, "the supervisor to start its children")
        publisher = publish_at_rate(cfg.kafka, events, rate=600)
        for _round in range(2):
            time.sleep(1.5)
            state = jsonio.loads(state_file.read_bytes())
            victim = state["children"]["0"]["pid"]
            os.kill(victim, signal.SIGKILL)
            wait_until(
                lambda v=victim: jsonio.loads(state_file.read_bytes())["children"]["0"]["pid"] != v,
                15,
                "the supervisor to restart the killed worker",
            )
        publisher.join()
        outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=len(events), timeout_s=90)
        missing = {e["id"] for e in events} - set(ids_of(outputs))
        assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:5]}"
        assert jsonio.loads(state_file.read_bytes())["children"]["0"]["restarts"] == 2
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0


@pytest.mark.parametrize("transport", ["kafka-python", "confluent-kafka"])
def test_sigterm_of_a_worker_mid_stream_loses_and_duplicates_nothing(
    config_factory, register, demo_set, spawn, transport
):
    cfg = config_factory(kafka={"transport": transport})
    register()
    events = [demo_set.event(i % 500, id=f"t-{i}") for i in range(2000)]
    first = spawn(cfg)
    spawn(cfg)
    publisher = publish_at_rate(cfg.kafka, events, rate=500)

    # SIGTERM once the group is stable (each member owns two partitions). Leaving while a
    # rebalance is still forming wedges the group on Tansu (see BROKER findings in README).
    wait_until(lambda: group_is_stable(cfg, members=2), 45, "a stable two-member group")
    time.sleep(0.5)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    publisher.join()
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=len(events), timeout_s=60)
    time.sleep(1.0)  # anything scored twice would arrive now
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=len(events) + 1, timeout_s=8)
    counts = Counter(ids_of(outputs))
    assert set(counts) == {e["id"] for e in events}
    assert [i for i, n in counts.items() if n > 1] == []


def test_hot_swap_across_two_processes_within_a_second_and_rollback(
    config_factory, register, model_store, demo_set, spawn
):
    cfg = config_factory()
    register(C=1.0)
    second = register(C=0.01, promote=False)
    spawn(cfg)
    spawn(cfg)
    events = [demo_set.event(i % 500, id=f"s-{i}") for i in range(4000)]
    produce(cfg.kafka, events[:50])
    read(cfg.kafka, cfg.kafka.output_topic, expected=50, timeout_s=30)  # both joined and scoring
    publisher = publish_at_rate(cfg.kafka, events[50:], rate=500)
    time.sleep(1.5)
    model_store.promote(second.version)
    promoted = time.time()
    time.sleep(4.0)
    model_store.rollback()
    rolled_back = time.time()
    publisher.join()
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=len(events), timeout_s=60)
    counts = Counter(ids_of(outputs))
    assert set(counts) == {e["id"] for e in events}
    assert max(counts.values()) == 1
    for r in outputs:
        at = r.value["scored_at"] / 1000
        version = r.value["model"]["version"]
        if at < promoted or at > rolled_back + 1.0:
            assert version == 1, (at - promoted, version)
        elif promoted + 1.0 < at < rolled_back:
            assert version == 2, (at - promoted, version)
    by_partition_v2 = {
        r.headers["streamscore.source.partition"]
        for r in outputs
        if r.value["model"]["version"] == 2
    }
    assert by_partition_v2 == {"0", "1", "2", "3"}, "both workers swapped"


@pytest.mark.parametrize("transport", ["kafka-python", "confluent-kafka"])
def test_two_workers_split_partitions_and_one_takes_over_when_the_other_leaves(
    config_factory, register, demo_set, transport
):
    cfg = config_factory(kafka={"transport": transport})
    register()
    a, b = ScoringWorker(cfg, index=0), ScoringWorker(cfg, index=1)
    threads = [threading.Thread(target=w.run, daemon=True) for w in (a, b)]
    for t in threads:
        t.start()
    try:
        wait_until(
            lambda: (
                len(a.status.assigned) + len(b.status.assigned) == 4
                and a.status.assigned
                and b.status.assigned
            ),
            20,
            "both workers to own partitions",
        )
        assert not set(a.status.assigned) & set(b.status.assigned)
        b.stop()
        threads[1].join(timeout=30)
        wait_until(lambda: len(a.status.assigned) == 4, 20, "the survivor to own all partitions")
        events = [demo_set.event(i) for i in range(200)]
        produce(cfg.kafka, events)
        outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=200)
        assert len(outputs) == 200
        wait_until(lambda: a.status.scored == 200, 10, "the survivor to score all")
    finally:
        a.stop()
        b.stop()
        for t in threads:
            t.join(timeout=30)


def test_worker_process_logs_partitions_model_and_log_file(
    config_factory, register, demo_set, spawn
):
    cfg = config_factory()
    register()
    process = spawn(cfg)
    log_file: Path = cfg.worker.log_dir / "worker-0.log"
    wait_until(lambda: log_file.exists() and "owns" in log_file.read_text(), 20, "startup log")
    text = log_file.read_text()
    assert "serving demo v1" in text
    assert f"{cfg.kafka.input_topic}[" in text
    assert "not loading ['pandas', 'pyarrow'] in this process" in text
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
