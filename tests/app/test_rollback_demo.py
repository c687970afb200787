"""The demos' shared rollback parts: the bad version, the wait for the monitor, its settings."""

from __future__ import annotations

import time

import pytest

from app.rollback_demo import (
    MONITOR_SETTINGS,
    DemoWaitFailed,
    live_rows,
    monitor_environ,
    register_breast_cancer,
    wait_for_rollback,
)
from model_store import ModelStore
from streamscore.config import load_config


@pytest.fixture
def store(make_config) -> ModelStore:
    return ModelStore.from_config(make_config())


def test_the_flipped_version_is_registered_without_the_gate_and_its_held_out_metrics_say_bad(
    store,
):
    good = register_breast_cancer(store, flipped=False)
    bad = register_breast_cancer(store, flipped=True)
    assert good.metrics["accuracy"] > 0.9 > 0.1 > bad.metrics["accuracy"]
    assert bad.metrics["log_loss"] > 1.0
    assert store.aliases().get("production") is None  # registered, never promoted
    assert "profile.json" in bad.files  # drift is counted for it as for any version


def good_then_bad_in_production(store: ModelStore) -> tuple[int, int]:
    v1 = register_breast_cancer(store, flipped=False).version
    v2 = register_breast_cancer(store, flipped=True).version
    store.promote(v1, reason="good")
    store.promote(v2, reason="bad")
    return v1, v2


def test_wait_for_rollback_returns_the_monitors_move_of_that_version(store):
    v1, v2 = good_then_bad_in_production(store)
    store.rollback("production", reason="monitor: live accuracy 0.01 vs 0.98 of v1")
    event = wait_for_rollback(store, "production", v2, 5.0)
    assert (event.from_version, event.to_version, event.action) == (v2, v1, "rollback")
    assert event.reason.startswith("monitor: live accuracy")


def test_a_rollback_before_the_latest_promotion_is_not_the_one_waited_for(store):
    _, v2 = good_then_bad_in_production(store)
    store.rollback("production", reason="an earlier run's rollback")
    store.promote(v2, reason="bad again")
    started = time.monotonic()
    with pytest.raises(DemoWaitFailed) as failed:
        wait_for_rollback(store, "production", v2, 0.5, logs="var/log/monitor.log")
    assert time.monotonic() - started >= 0.5
    text = str(failed.value)
    assert f"waited 0.5 s for the monitor's automatic rollback of 'production' v{v2}" in text
    assert "[demo] wait_timeout_ms" in text and "var/log/monitor.log" in text


def test_wait_for_rollback_stops_as_soon_as_the_check_raises(store):
    v1 = register_breast_cancer(store, flipped=False).version
    store.promote(v1, reason="good")

    def monitor_exited() -> None:
        raise DemoWaitFailed("the monitor exited (code 2)")

    with pytest.raises(DemoWaitFailed, match="the monitor exited"):
        wait_for_rollback(store, "production", v1, 60.0, check=monitor_exited)


def test_monitor_environ_loads_as_the_demo_monitor_settings(tmp_path):
    environ = monitor_environ(
        {**MONITOR_SETTINGS, "window_s": 4}, group_id="g-run", state_path=tmp_path / "s", port=0
    )
    path = tmp_path / "config.toml"
    path.write_text("[monitor]\nwindow_s = 3600\nauto_rollback = false\n")
    cfg = load_config(path, environ=environ)
    m = cfg.monitor
    assert (m.window_s, m.min_labels_per_window, m.consecutive_windows) == (4, 50, 3)
    assert m.auto_rollback is True  # the demo shows the rollback whatever the file says
    assert (m.group_id, m.state_path, m.port) == ("g-run", tmp_path / "s", 0)


def test_live_rows_put_held_out_next_to_live_metrics(store):
    v1 = register_breast_cancer(store, flipped=False)
    quality = {"versions": {str(v1.version): {"accuracy": 0.5, "labelled": 10, "predictions": 20}}}
    (row,) = live_rows(quality, store)
    assert row.held_out_accuracy == pytest.approx(v1.metrics["accuracy"])
    assert (row.live_accuracy, row.labelled, row.predictions) == (0.5, 10, 20)
    assert row.cells()[0] == f"v{v1.version}" and row.cells()[4] == "–"  # no live log loss yet
