"""Fixtures for training tests: config files in ``tmp_path`` and the exported demo data.

No broker is needed: ``[kafka] bootstrap_servers`` points at a closed port, so the promotion
notice is skipped at once (workers would see the move on their next store poll).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from streamscore.config import Config, load_config
from tests.tomlwrite import dumps_toml
from training import export_demo_data

ConfigMaker = Callable[..., Config]

#: Port 1 on loopback: nothing listens, the connection is refused at once.
CLOSED_BOOTSTRAP = "127.0.0.1:1"


DEFAULT_GATE: dict[str, Any] = {
    "min": {"roc_auc": 0.95},
    "max": {"log_loss": 0.5},
    "compare_metric": "roc_auc",
    "tolerance": 0.01,
}


@pytest.fixture
def make_config(tmp_path: Path) -> ConfigMaker:
    """``make_config(name="config.toml", **sections) -> Config`` written into ``tmp_path``.

    Every file shares the store (``models``), the data (``data/train.csv``) and the events
    (``data/events.jsonl``) in ``tmp_path``: relative paths resolve against the file's folder.
    Sections given replace keys of the defaults (``training={"gate": {...}}`` replaces the
    whole gate).
    """

    def make(name: str = "config.toml", **sections: Mapping[str, Any]) -> Config:
        base: dict[str, dict[str, Any]] = {
            "kafka": {"bootstrap_servers": CLOSED_BOOTSTRAP},
            "model_store": {"root": "models", "model_name": "breast-cancer"},
            "training": {
                "data_path": "data/train.csv",
                "estimator_params": {"max_iter": 2000},
                "gate": DEFAULT_GATE,
            },
            "demo": {"events_path": "data/events.jsonl"},
        }
        for section, changes in sections.items():
            base[section] = {**base.get(section, {}), **changes}
        path = tmp_path / name
        path.write_text(dumps_toml(base), encoding="utf-8")
        return load_config(path, environ={})

    return make


@pytest.fixture
def cfg(make_config: ConfigMaker) -> Config:
    """The default test config, with the breast-cancer demo data exported."""
    config = make_config()
    export_demo_data(config)
    return config
