"""``streamscore demo`` reports only what it ran, twice in a row on one broker, shows the monitor
rolling a bad version back, and fails loudly."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def run_demo(cfg, timeout_s: float = 570) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamscore", "--config", str(cfg.source), "demo"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def demo_config(config_factory, **demo):
    return config_factory(
        demo={"backlog_repeat": 3, **demo},
        worker={"assignment": "supervisor", "max_wait_ms": 10},
    )


@pytest.mark.timeout(1200)  # two demos, each training two models and starting two workers
def test_demo_twice_in_a_row_on_one_broker_prints_each_runs_own_numbers(config_factory):
    cfg = demo_config(config_factory)
    runs = [run_demo(cfg), run_demo(cfg)]
    ids = []
    for number, done in enumerate(runs, 1):
        assert done.returncode == 0, f"run {number}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        out = done.stdout
        ids.append(re.search(r"event ids start with (demo-[0-9a-f]{6})-", out).group(1))
        # 569 rows, 20 % held back: 114 events x 3 repeats, and 3 malformed ones.
        assert re.search(r"│ scored\s+│\s+342 │", out), out
        assert re.search(r"│ total published\s+│\s+345 │", out), out
        assert "every streamed event scored: 8,000 ids" in out, out
        # Step 8: the bad version (3, then 6) is rolled back to B (2, then 5) by the monitor,
        # which compared its live accuracy with B's live accuracy, and says so with the numbers.
        bad, good = 3 * number, 3 * number - 1
        assert f"AUTOMATIC ROLLBACK v{bad} -> v{good}" in out, out
        reason = re.search(
            r"reason: monitor: live accuracy (0\.\d+) vs (0\.\d+) of v(\d+) over 3 ", out
        )
        assert reason, out
        assert float(reason.group(1)) < 0.2 < 0.9 < float(reason.group(2)), reason.group(0)
        assert int(reason.group(3)) == good
        assert f"production is v{good} again" in out, out
    assert ids[0] != ids[1]
    # The second run trained versions 4 and 5 (and 6, the bad one), and its swap table and its
    # live metrics show only its own versions.
    second = runs[1].stdout
    assert "version 4: gate passed" in second and "version 5 registered" in second
    swap = second[second.index("mid-stream swap") : second.index("9. stop")]
    assert not re.search(r"\bv[123]\b", swap), swap


def test_demo_whose_wait_times_out_fails_naming_what_it_waited_for(config_factory):
    cfg = demo_config(config_factory, wait_timeout_ms=1)
    done = run_demo(cfg)
    assert done.returncode == 2, done.stdout[-2000:]
    assert "waited 0.001 s for the predictions of this run's 342 events" in done.stderr
    assert cfg.kafka.output_topic in done.stderr
    assert "workers stopped" in done.stdout  # it still stops what it started
