"""Fixtures for monitor tests: a config with the monitor's own topics, a real model store with
a good and a bad version, and a monitor service running in a thread."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from model_store import FeatureSpec, Manifest, ModelStore
from monitor.service import MonitorService
from streamscore import jsonio
from streamscore.config import Config


@pytest.fixture
def monitor_config(config_factory: Callable[..., Config], kafka_section: dict[str, Any]):
    """``monitor_config(**monitor_keys, **sections) -> Config`` with uuid labels/quality topics,
    the join state in tmp_path, any free port and a 200 ms evaluation interval."""
    run = kafka_section["input_topic"].removesuffix(".in")

    def make(sections: dict[str, Any] | None = None, **monitor: Any) -> Config:
        sections = dict(sections or {})
        kafka = {
            "labels_topic": f"{run}.labels",
            "quality_topic": f"{run}.quality",
            "monitoring_topic": f"{run}.monitoring",
            "shadow_topic": f"{run}.shadow",
            **sections.pop("kafka", {}),
        }
        keys = {
            "state_path": "monitor/join.sqlite",
            "port": 0,
            "evaluate_interval_ms": 200,
            **monitor,
        }
        return config_factory(kafka=kafka, monitor=keys, **sections)

    return make


@pytest.fixture(scope="session")
def cancer() -> tuple[list[str], np.ndarray, np.ndarray]:
    data = load_breast_cancer()
    return [n.replace(" ", "_") for n in data.feature_names], data.data, data.target


def event(cancer: tuple[list[str], np.ndarray, np.ndarray], i: int, prefix: str = "e") -> dict:
    names, X, _ = cancer
    body: dict[str, Any] = {"id": f"{prefix}-{i}"}
    body.update({n: float(v) for n, v in zip(names, X[i % len(X)], strict=True)})
    return body


def label(cancer: tuple[list[str], np.ndarray, np.ndarray], i: int, prefix: str = "e") -> dict:
    return {"id": f"{prefix}-{i}", "label": int(cancer[2][i % len(cancer[2])])}


def register(
    store: ModelStore, cancer: tuple[list[str], np.ndarray, np.ndarray], *, bad: bool = False
) -> Manifest:
    """A logistic regression; ``bad`` fits it on flipped labels (live accuracy about 0.05)."""
    names, X, y = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(X, 1 - y if bad else y)
    return store.register(
        model,
        task="classification",
        features=[FeatureSpec(n, "float") for n in names],
        classes=[0, 1],
        metrics={"accuracy": 0.97, "log_loss": 0.08, "roc_auc": 0.99},
        estimator="LogisticRegression()" + (" on flipped labels" if bad else ""),
    )


@pytest.fixture
def run_monitor() -> Iterator[Callable[..., MonitorService]]:
    """``run_monitor(cfg, **kwargs)`` starts a MonitorService in a thread; stopped after the
    test."""
    started: list[tuple[threading.Event, threading.Thread, list[BaseException]]] = []

    def start(cfg: Config, **kwargs: Any) -> MonitorService:
        service = MonitorService(cfg, **kwargs)
        stop = threading.Event()
        errors: list[BaseException] = []

        def target() -> None:
            try:
                service.run(stop)
            except BaseException as exc:
                errors.append(exc)
                raise

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        started.append((stop, thread, errors))
        assert service.ready.wait(30), f"monitor did not start: {errors}"
        return service

    yield start
    for stop, thread, errors in started:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "monitor did not stop"
        assert not errors, f"monitor failed: {errors}"


def read_state(path: Path) -> dict[str, Any]:
    """Counters and per-version labelled counts, read-only from another connection."""
    if not path.exists():
        return {"counters": {}, "labelled": {}}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        labelled: dict[int, int] = {}
        for version, sums in db.execute("SELECT version, sums FROM windows"):
            labelled[version] = labelled.get(version, 0) + jsonio.loads(sums)["labelled"]
    except sqlite3.OperationalError:
        return {"counters": {}, "labelled": {}}
    finally:
        db.close()
    return {"counters": counters, "labelled": labelled}
