"""``python -m bench.stages`` splits the worker's CPU per event by stage (README, Performance):
it runs as the README shows it and its parts are parts of the whole pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_the_stage_profile_prints_every_stage_and_the_budget():
    done = subprocess.run(
        [sys.executable, "-m", "bench.stages", "--model", "lr", "--ceiling", "100000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| stage")
    }
    us = {stage: float(value) for stage, value in rows.items()}
    assert us["budget at 70 % of 100,000 events/s, for everything"] == pytest.approx(14.29, 0.01)
    parts = ("decode (JSON → dict)", "model call", "encode (dict → JSON)", "lineage headers")
    assert all(us[p] > 0 for p in parts), us
    assert us["whole pass"] > sum(us[p] for p in parts), us
    assert us["confluent-kafka produce()"] > 0, us
