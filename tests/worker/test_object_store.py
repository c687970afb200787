"""Workers on two hosts sharing a model store in object storage (SeaweedFS), no shared files.

Each "host" is a worker process with its own config, cache folder and log folder; the only
things they share are the Kafka topics and the S3 bucket.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from model_store import ModelStore
from model_store.s3_storage import S3Options
from tests.conftest import PythonProcesses, worker_run
from tests.kafka_helpers import produce, read, wait_until
from tests.object_storage import S3Server
from tests.worker.test_processes import ids_of, publish_at_rate

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def model_store(s3_server: S3Server, s3_root: str) -> ModelStore:
    """The shared store (replaces the folder store of tests/worker/conftest.py here)."""
    return ModelStore(s3_root, "demo", s3=S3Options(endpoint_url=s3_server.endpoint))


@pytest.fixture
def host_config(config_factory, s3_server: S3Server, model_store: ModelStore, tmp_path: Path):
    """``host_config("a", **worker) -> Config`` of one host: its own cache and log folders."""

    def make(host: str, **worker: Any) -> Any:
        return config_factory(
            name=f"host-{host}.toml",
            model_store={
                "root": str(model_store.root),
                "model_name": "demo",
                "endpoint_url": s3_server.endpoint,
                "region": "us-east-1",
                "cache_dir": f"host-{host}/cache",
                "request_timeout_ms": 1000,
                "retry_backoff_ms": 200,
                "max_retry_backoff_ms": 1000,
            },
            # Two "hosts" on one machine share its hostname: each needs its own static member
            # name, as two real hosts have (the default names it after the hostname).
            kafka={"instance_id": f"{{group}}-host-{host}-{{index}}"},
            worker={"log_dir": f"host-{host}/log", **worker},
        )

    return make


@pytest.fixture
def spawn(python_processes: PythonProcesses) -> Callable[..., subprocess.Popen[bytes]]:
    def start(cfg: Any) -> subprocess.Popen[bytes]:
        return python_processes.start(cfg, *worker_run(0))

    return start


def test_workers_on_two_hosts_swap_within_a_second_of_a_promote(
    host_config, register, model_store, demo_set, spawn, tmp_path, broker_engine
):
    first = register(C=1.0)
    second = register(C=0.01, promote=False)
    host_a, host_b = host_config("a"), host_config("b")
    spawn(host_a)
    spawn(host_b)
    events = [demo_set.event(i % 500, id=f"h-{i}") for i in range(3000)]
    produce(host_a.kafka, events[:50])
    read(host_a.kafka, host_a.kafka.output_topic, expected=50, timeout_s=60)  # both scoring
    publisher = publish_at_rate(host_a.kafka, events[50:], rate=500)
    time.sleep(1.5)
    model_store.promote(second.version)
    promoted = time.time()
    publisher.join()
    outputs = read(host_a.kafka, host_a.kafka.output_topic, expected=len(events), timeout_s=60)
    counts = Counter(ids_of(outputs))
    assert set(counts) == {e["id"] for e in events} and max(counts.values()) == 1
    late = [r for r in outputs if r.value["scored_at"] / 1000 > promoted + 1.0]
    assert late and {r.value["model"]["version"] for r in late} == {second.version}
    swapped = {
        r.headers["streamscore.source.partition"]
        for r in outputs
        if r.value["model"]["version"] == second.version
    }
    assert swapped == {"0", "1", "2", "3"}, "both hosts swapped"
    for host in ("a", "b"):  # each host downloaded each version into its own cache
        cache = tmp_path / f"host-{host}" / "cache" / "demo"
        for manifest in (first, second):
            assert (cache / str(manifest.version) / "model.skops").is_file()


class Publisher:
    """Publishes events at about ``rate`` per second until stopped; remembers their ids."""

    def __init__(self, kafka: Any, demo_set: Any, rate: float) -> None:
        self.kafka, self.demo_set, self.rate = kafka, demo_set, rate
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        chunk = max(int(self.rate / 10), 1)
        while not self._stop.is_set():
            start = len(self.ids)
            batch = [self.demo_set.event(i % 500, id=f"o-{i}") for i in range(start, start + chunk)]
            produce(self.kafka, batch)
            self.ids.extend(e["id"] for e in batch)
            self._stop.wait(0.1)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.ids


def test_workers_keep_scoring_while_the_store_is_down_then_follow_a_later_promote(
    host_config, register, model_store, demo_set, spawn, s3_server: S3Server
):
    register(C=1.0)
    second = register(C=0.01, promote=False)
    cfg = host_config("a")
    spawn(cfg)
    produce(cfg.kafka, [demo_set.event(i, id=f"w-{i}") for i in range(50)])
    read(cfg.kafka, cfg.kafka.output_topic, expected=50, timeout_s=60)
    publisher = Publisher(cfg.kafka, demo_set, rate=300)
    with s3_server.stopped():
        down = time.time()
        time.sleep(8.0)
        up = time.time()
    model_store.promote(second.version)
    promoted = time.time()
    time.sleep(6.0)
    ids = publisher.stop()
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=50 + len(ids), timeout_s=60)
    scored = [(r.value["scored_at"] / 1000, r.value["model"]["version"]) for r in outputs]
    first_v2 = min((at for at, version in scored if version == second.version), default=None)
    timeline = f"down {down:.1f}, up {up:.1f}, promoted {promoted:.1f}, first v2 {first_v2}"
    assert set(ids_of(outputs)) >= set(ids), timeline
    # Every event published while the store was down (but the last 3 s: latency on a loaded
    # machine) was scored before it came back, by the version in memory: the outage did not
    # hold the stream up.
    inputs = read(cfg.kafka, cfg.kafka.input_topic, expected=50 + len(ids), timeout_s=60)
    published = {r.value["id"]: r.timestamp / 1000 for r in inputs}
    published_during = [r for r in outputs if down < published[r.value["id"]] < up - 3.0]
    assert len(published_during) >= 300, timeline
    assert {r.value["model"]["version"] for r in published_during} == {1}
    assert max(r.value["scored_at"] / 1000 for r in published_during) < up, timeline
    # The worker retries at most max_retry_backoff_ms (1 s) apart, then polls every 100 ms.
    late = [version for at, version in scored if at > promoted + 4.0]
    assert late and set(late) == {second.version}, timeline
    log_file = Path(cfg.worker.log_dir) / "worker-0.log"
    wait_until(
        lambda: "reachable again" in log_file.read_text(), timeout_s=10, what="recovery logged"
    )
    assert "unreachable" in log_file.read_text()
