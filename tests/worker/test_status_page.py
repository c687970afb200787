"""The live status page, opened in headless Chromium: its numbers match /metrics."""

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


def test_status_page_shows_the_numbers_of_metrics(config_factory, register, demo_set, tmp_path):
    browser = chromium()
    register()
    cfg = config_factory(http={"enabled": True, "port": 0})
    process = WorkerProcess(cfg)
    worker = process.worker
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: process.http is not None, 10, "HTTP side")
        base = f"http://127.0.0.1:{process.http.port}"
        produce(cfg.kafka, [*[demo_set.event(i) for i in range(120)], b"bad", b"[]"])
        read(cfg.kafka, cfg.kafka.output_topic, expected=120)
        wait_until(
            lambda: worker.status.scored == 120 and worker.status.dead_letters == 2, 10, "counts"
        )
        assert httpx.get(f"{base}/static/chart.umd.min.js").status_code == 200
        dom = headless(browser, f"{base}/", tmp_path / "profile", "--dump-dom")
        metrics = httpx.get(f"{base}/metrics").text
        scored = re.search(r'streamscore_events_scored_total\{model_version="1"\} (\S+)', metrics)
        assert scored and text_of(dom, "scored-total") == f"{float(scored.group(1)):,.0f}" == "120"
        assert text_of(dom, "dead-total") == "2"
        assert text_of(dom, "model-version") == "demo v1"
        assert text_of(dom, "model-alias") == "production"
        assert text_of(dom, "ready") == "yes"
        assert text_of(dom, "batch-mean") not in ("", "–")
        assert text_of(dom, "latency-p99") not in ("", "–")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "status-page.png"
        headless(browser, f"{base}/", tmp_path / "profile2", f"--screenshot={shot}")
        assert shot.exists() and shot.stat().st_size > 10_000
    finally:
        worker.stop()
        thread.join(timeout=30)
