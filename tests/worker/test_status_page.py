"""The live status page, opened in headless Chromium: its numbers match /metrics, and it shows
the whole group (every member's status record), with events flowing and a swap."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.kafka_helpers import produce, read, wait_until
from worker.runner import WorkerProcess
from worker.service import ScoringWorker

pytestmark = pytest.mark.broker

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("Chromium is missing on CI: .ci/run installs Debian's `chromium` package")
    pytest.skip("needs headless Chromium: apt-get install chromium")


def headless(browser: str, url: str, profile: Path, *extra: str) -> str:
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=7000",
        "--window-size=1400,1000",
        *extra,
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    return done.stdout


def text_of(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, f"#{element_id} not in the page"
    return match.group(1).strip()


def hidden(dom: str, element_id: str) -> bool:
    match = re.search(rf'<[^>]*id="{element_id}"[^>]*>', dom)
    assert match, f"#{element_id} not in the page"
    return " hidden" in match.group(0)


def inner(dom: str, element_id: str) -> str:
    """The text inside an element (tags stripped); it must not nest its own kind of tag."""
    match = re.search(rf'<(\w+)[^>]*id="{element_id}"[^>]*>(.*?)</\1>', dom, re.S)
    assert match, f"#{element_id} not in the page"
    return re.sub(r"<[^>]+>", " ", match.group(2))


class Traffic:
    """Events flowing at ~100/s until stopped."""

    def __init__(self, kafka, demo_set) -> None:
        self.kafka, self.demo_set = kafka, demo_set
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            produce(self.kafka, [self.demo_set.event((self.sent + i) % 500) for i in range(20)])
            self.sent += 20
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_status_page_shows_the_fleet_with_events_flowing_and_a_swap(
    config_factory, register, model_store, demo_set, tmp_path
):
    browser = chromium()
    register()
    cfg = config_factory(http={"enabled": True, "port": 0}, worker={"status_interval_ms": 500})
    process = WorkerProcess(cfg)
    worker = process.worker
    other = ScoringWorker(cfg, index=1)  # a second member of the group, without HTTP
    threads = [threading.Thread(target=t, daemon=True) for t in (process.run, other.run)]
    for thread in threads:
        thread.start()
    traffic = None
    try:
        wait_until(lambda: process.http is not None, 10, "HTTP side")
        base = f"http://127.0.0.1:{process.http.port}"
        wait_until(lambda: worker.ready and other.ready, 60, "two ready members")

        # Before any event: every chart says why it is empty.
        empty = headless(browser, f"{base}/", tmp_path / "profile0", "--dump-dom")
        assert not hidden(empty, "dead-empty") and not hidden(empty, "predictions-empty")
        assert "no dead letters yet" in inner(empty, "dead-list")

        produce(cfg.kafka, [*[demo_set.event(i) for i in range(120)], b"bad", b"[]"])
        read(cfg.kafka, cfg.kafka.output_topic, expected=120)
        wait_until(
            lambda: (
                worker.status.scored + other.status.scored == 120
                and worker.status.dead_letters + other.status.dead_letters == 2
            ),
            10,
            "counts",
        )
        assert httpx.get(f"{base}/static/chart.umd.min.js").status_code == 200
        dom = headless(browser, f"{base}/", tmp_path / "profile", "--dump-dom")
        metrics = httpx.get(f"{base}/metrics").text
        scored = re.search(r'streamscore_events_scored_total\{model_version="1"\} (\S+)', metrics)
        assert scored and text_of(dom, "scored-total") == f"{float(scored.group(1)):,.0f}"
        assert text_of(dom, "scored-total") == f"{worker.status.scored:,}"
        assert text_of(dom, "model-version") == "demo v1"
        assert text_of(dom, "model-alias") == "production"
        assert text_of(dom, "ready") == "yes"
        assert text_of(dom, "batch-mean") not in ("", "–")
        assert text_of(dom, "fleet-summary") == "2 of 2 members ready"
        rows = inner(dom, "fleet-rows")
        assert worker.worker_id in rows and other.worker_id in rows and "(this page)" in rows
        assert rows.count("demo v1 (production)") == 2
        total = inner(dom, "fleet-total")
        assert "2 live" in total and "production v1" in total
        assert re.search(r"\b4\b", total)  # every partition, summed over the members
        reasons = inner(dom, "dead-list")  # both members' dead letters, with their reasons
        assert "JSONDecodeError" in reasons and "NotAnObject" in reasons
        lags = inner(dom, "lag-rows")
        assert all(f"{t}[{p}]" in lags for t, p in worker.status.assigned)
        # this member's own charts: words only where it has nothing of its own yet
        assert hidden(dom, "dead-empty") == (worker.status.dead_letters > 0)
        assert hidden(dom, "predictions-empty") == (worker.status.scored > 0)

        # Events flowing, and v2 promoted as the capture starts: the charts mark the swap.
        traffic = Traffic(cfg.kafka, demo_set)
        v2 = register(C=0.5, promote=False)
        model_store.promote(v2.version, "production")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        live = headless(browser, f"{base}/", tmp_path / "profile2", "--dump-dom")
        assert "v1 → v2" in text_of(live, "swaps")
        assert int(re.search(r'data-swap-markers="(\d+)"', live).group(1)) >= 1
        assert text_of(live, "model-version") == "demo v2"
        assert text_of(live, "throughput") not in ("", "–", "0")
        assert text_of(live, "latency-p99") not in ("", "–")
        shot = ARTIFACTS / "status-page.png"
        headless(browser, f"{base}/", tmp_path / "profile3", f"--screenshot={shot}")
        assert shot.exists() and shot.stat().st_size > 10_000
    finally:
        if traffic is not None:
            traffic.stop()
        worker.stop()
        other.stop()
        for thread in threads:
            thread.join(timeout=30)


def monitor_records(cfg, version: int, outcomes: list[tuple[int, int]]) -> list[dict]:
    """The records a real monitor publishes for ``version``'s (prediction, label) pairs, in a
    closed window (the default 1-hour windows, two hours ago)."""
    import time

    from monitor.joinstate import Label, Prediction
    from monitor.service import MonitorService

    service = MonitorService(cfg)
    try:
        now = int(time.time() * 1000)
        at = now - 2 * 3_600_000
        ids = [f"v{version}-{i}" for i in range(len(outcomes))]
        service.state.apply(
            [
                Prediction(i, version, at, p, {"0": 1.0 - p, "1": float(p)})
                for i, (p, _) in zip(ids, outcomes, strict=True)
            ],
            [Label(i, y, at + 1000) for i, (_, y) in zip(ids, outcomes, strict=True)],
            {},
        )
        return [
            service.quality_record(version, w) | {"at": now}
            for _, w, _ in service.state.windows(version)
        ]
    finally:
        service.state.close()


def test_status_page_shows_live_quality_per_version_next_to_held_out(
    config_factory, register, tmp_path
):
    import time
    import uuid

    from streamscore.kafka_admin import ensure_topics
    from tests.kafka_helpers import produce_json

    browser = chromium()
    first, second = register(), register(C=0.5)  # held-out accuracy 0.97 each (the fixture)
    quality_topic = f"status-quality-{uuid.uuid4().hex[:8]}"
    cfg = config_factory(
        http={"enabled": True, "port": 0},
        kafka={"quality_topic": quality_topic},
        monitor={"state_path": "monitor/join.sqlite"},
    )
    ensure_topics(cfg.kafka, [quality_topic], partitions=1)
    # v1 right 9 times in 10, v2 (production) right 1 time in 10, then the monitor's decision.
    records = monitor_records(cfg, first.version, [(1, 1)] * 90 + [(0, 1)] * 10)
    records += monitor_records(cfg, second.version, [(1, 1)] * 10 + [(0, 1)] * 90)
    records.append(
        {
            "type": "decision",
            "action": "rollback",
            "version": second.version,
            "target": first.version,
            "reason": "live accuracy 0.1 vs 0.9 of v1 over 3 windows of 300 labels",
            "numbers": {},
            "at": int(time.time() * 1000),
        }
    )
    records.append(  # the monitor's record for a shadow: live next to production, same ids
        {
            "type": "candidate",
            "role": "shadow",
            "alias": "candidate",
            "model": {"name": cfg.model_store.model_name, "version": first.version},
            "production_version": second.version,
            "cumulative": {"accuracy": 0.95, "log_loss": 0.12, "labelled": 1200},
            "production_cumulative": {"accuracy": 0.15, "log_loss": 2.5, "labelled": 1200},
            "at": int(time.time() * 1000),
        }
    )
    process = WorkerProcess(cfg)
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: process.http is not None, 10, "HTTP side")
        base = f"http://127.0.0.1:{process.http.port}"
        wait_until(lambda: process.worker.ready, 60, "a ready worker")
        before = headless(browser, f"{base}/", tmp_path / "profile0", "--dump-dom")
        assert "no live quality yet" in inner(before, "quality-rows")
        assert "no shadow or canary judged yet" in inner(before, "candidate-rows")
        produce_json(cfg.kafka, quality_topic, records)
        wait_until(
            lambda: len(httpx.get(f"{base}/fleet").json()["quality"]["versions"]) == 2,
            20,
            "both versions' quality records in /fleet",
        )
        dom = headless(browser, f"{base}/", tmp_path / "profile1", "--dump-dom")
        assert 'data-quality-versions="2"' in dom
        head = inner(dom, "quality-head")
        assert "accuracy held-out" in head and "accuracy live" in head and "log loss live" in head
        row = {
            v: re.search(rf'<tr data-version="{v}">(.*?)</tr>', dom, re.S).group(1)
            for v in (first.version, second.version)
        }
        cells = {v: re.findall(r"<td[^>]*>([^<]*)</td>", r) for v, r in row.items()}
        # version, labelled, coverage, then accuracy held-out / live / window, ...
        assert cells[first.version][:6] == [
            f"v{first.version}",
            "100 of 100",
            "100 %",
            "0.970",
            "0.900",
            "0.900",
        ]
        assert cells[second.version][:6] == [
            f"v{second.version} (serving)",
            "100 of 100",
            "100 %",
            "0.970",
            "0.100",
            "0.100",
        ]
        shadow_row = re.search(r'<tr data-role="shadow">(.*?)</tr>', dom, re.S).group(1)
        assert re.findall(r"<td[^>]*>([^<]*)</td>", shadow_row)[:5] == [
            f"shadow v{first.version} (candidate)",
            f"production v{second.version}, same ids",
            "1,200",
            "0.950",  # accuracy: the shadow's, then production's on the same ids
            "0.150",
        ]
        decision = text_of(dom, "quality-decision")
        assert f"rollback v{second.version} → v{first.version}" in decision
        assert "live accuracy 0.1 vs 0.9 of v1 over 3 windows of 300 labels" in decision
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "status-page-quality.png"
        headless(browser, f"{base}/", tmp_path / "profile2", f"--screenshot={shot}")
        assert shot.exists() and shot.stat().st_size > 10_000
    finally:
        process.worker.stop()
        thread.join(timeout=30)
