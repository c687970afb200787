"""Static member names: a fence that new clients get over, and a name two processes share.

A static member (``group.instance.id``) is fenced by the group coordinator when another
consumer joins with the same name. Once (librdkafka's own rejoin after a broker restart) new
clients fix it; two processes with one name fence each other for ever, so one of them must
stop and say which setting to change, and its supervisor must not restart it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from streamscore.exceptions import WorkerConflict
from tests.kafka_helpers import produce, read, wait_until
from worker.membership import FenceWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_fence_is_got_over_and_fences_far_apart_never_add_up(config_factory):
    cfg = config_factory(create_topics=False)
    clock = Clock()
    watch = FenceWatch(cfg, "g-host-0", limit=3, window_s=120, clock=clock)
    assert watch.fenced() == 1  # a broker restart: new clients, no conflict
    clock.now += 100
    assert watch.fenced() == 2
    clock.now += 100  # the first fell out of the window
    assert watch.fenced() == 2
    clock.now += 300
    assert watch.fenced() == 1


def test_fences_in_quick_succession_name_the_shared_instance_id_and_the_fix(config_factory):
    cfg = config_factory(create_topics=False, kafka={"instance_id": "{group}-{host}-{index}"})
    clock = Clock()
    watch = FenceWatch(cfg, "g-host-0", limit=3, window_s=120, clock=clock)
    watch.fenced()
    clock.now += 5
    watch.fenced()
    clock.now += 5
    with pytest.raises(WorkerConflict) as caught:
        watch.fenced()
    message = str(caught.value)
    assert "'g-host-0'" in message and cfg.kafka.group_id in message
    assert "3 times in 10 s" in message
    assert "[kafka] instance_id" in message and "static_membership" in message


def _supervisor(cfg) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamscore", "--config", str(cfg.source), "worker", "-n", "1"],
        stderr=subprocess.DEVNULL,  # its log file is read instead
    )


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("transport", ["kafka-python", "confluent-kafka"])
def test_two_supervisors_sharing_a_static_name_one_stops_naming_it_the_other_scores_everything(
    config_factory, register, demo_set, broker_engine, transport
):
    if broker_engine == "tansu":
        pytest.skip("Tansu 0.6.0 does not fence static members (README, broker notes)")
    register()
    # Two supervisors on one host with one config except the log folder: both name their
    # process 0 "<group>-<host>-0", as two copies of one deployment would.
    worker = {"restart_backoff_ms": 200, "max_restarts": 5}
    kafka = {"transport": transport, "static_membership": "on", "session_timeout_ms": 6000}
    first = config_factory(name="a.toml", kafka=kafka, worker={"log_dir": "log-a", **worker})
    second = config_factory(name="b.toml", kafka=kafka, worker={"log_dir": "log-b", **worker})
    events = [demo_set.event(i % 500, id=f"s-{i}") for i in range(600)]
    produce(first.kafka, events[:100])
    processes = {"a": _supervisor(first)}
    try:
        read(first.kafka, first.kafka.output_topic, expected=100, timeout_s=90)
        processes["b"] = _supervisor(second)
        wait_until(
            lambda: any(p.poll() is not None for p in processes.values()),
            120,
            "one of the two supervisors to stop on the shared name",
        )
        time.sleep(1.0)
        stopped = [name for name, p in processes.items() if p.poll() is not None]
        assert len(stopped) == 1, "exactly one of them stops; the other keeps its partitions"
        loser = processes[stopped[0]]
        assert loser.returncode == 2
        log_dir = first.worker.log_dir if stopped[0] == "a" else second.worker.log_dir
        reason = (log_dir / "worker-0.exit").read_text()
        assert "another process uses this worker's static member name" in reason
        assert "[kafka] instance_id" in reason
        supervisor_log = (log_dir / "supervisor.log").read_text()
        assert "not restarting it" in supervisor_log
        assert supervisor_log.count("started worker 0") == 1, "never restarted"
        produce(first.kafka, events[100:])
        outputs = read(first.kafka, first.kafka.output_topic, expected=len(events), timeout_s=90)
        assert {r.value["id"] for r in outputs} == {e["id"] for e in events}
    finally:
        for p in processes.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
