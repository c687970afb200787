"""The [monitor] section and the monitor's topics in [kafka]: defaults and dependent checks."""

from __future__ import annotations

import pytest

from streamscore.config import config_from_dict, load_config
from streamscore.exceptions import ConfigError


def test_monitor_defaults_are_the_issue_numbers() -> None:
    m = config_from_dict({}, environ={}).monitor
    assert m.label_ttl_s == 7 * 86_400 and m.label_wait_s == 3600
    assert m.window_s == 3600 and m.drift_window_minutes == 60 and m.drift_min_events == 500
    assert (m.drift_warn, m.drift_alert) == (0.1, 0.25)
    assert (m.min_labels_per_window, m.min_coverage, m.consecutive_windows) == (500, 0.5, 3)
    assert (m.accuracy_margin, m.log_loss_margin, m.mae_margin) == (0.02, 0.10, 0.10)
    assert m.auto_rollback is True and m.max_pending_predictions == 1_000_000


def test_shipped_config_toml_loads_with_a_monitor_section() -> None:
    cfg = load_config("config.toml", environ={})
    assert cfg.monitor.group_id != cfg.kafka.group_id
    assert cfg.kafka.labels_topic == "streamscore.breast-cancer.labels"  # from model_name


def test_auto_rollback_off_from_the_environment() -> None:
    env = {"STREAMSCORE__MONITOR__AUTO_ROLLBACK": "false"}
    assert config_from_dict({}, environ=env).monitor.auto_rollback is False


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"monitor": {"group_id": "streamscore-breast-cancer"}},
            "needs a consumer group of its own",
        ),
        ({"kafka": {"labels_topic": "streamscore.breast-cancer.predictions"}}, "must differ"),
        ({"kafka": {"quality_topic": "bad topic"}}, "not a Kafka topic name"),
        (
            {"monitor": {"drift_warn": 0.3, "drift_alert": 0.2}},
            "drift_warn (0.3) must be below drift_alert (0.2): lower drift_warn or raise",
        ),
        (
            {"monitor": {"drift_warn": 0.2, "drift_alert": 0.2}},
            "drift_warn (0.2) must be below drift_alert (0.2)",
        ),
        ({"monitor": {"drift_warn": 0}}, "[monitor] drift_warn = 0.0 would warn on every"),
        ({"monitor": {"label_wait_s": 10, "label_ttl_s": 5}}, "label_wait_s (10) must be <="),
        ({"monitor": {"min_coverage": 1.5}}, "min_coverage"),
        ({"monitor": {"window": 60}}, "unknown key 'window' in [monitor]"),
    ],
)
def test_monitor_settings_that_do_not_fit_are_errors(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        config_from_dict(raw, environ={})
    assert message in str(excinfo.value)
