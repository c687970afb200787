"""Running worker processes and what they refuse to load: code-running pickles (never run),
pickles without allow_pickle, versions failing their examples. The old version keeps serving."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from model_store import ModelStore
from model_store.artifact import ArtifactPolicy
from tests.example_cases import (
    CLASSIFIER_KINDS,
    CLEAR_MALIGNANT,
    classifier_case,
    examples_bytes,
    radius,
    range_case,
    register_classifier,
    register_regressor,
    row_event,
)
from tests.kafka_helpers import produce, read, wait_until
from tests.model_store.hostile import code_running_pickle, plant, write_legacy_version

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def worker_process() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(cfg, index: int = 0) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker",
                "run",
                "--index",
                str(index),
                "--config",
                str(cfg.source),
            ]
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Served:
    """Publishes one event at a time and says which version scored it."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.sent = 0

    def version(self) -> int:
        self.sent += 1
        ident = f"probe-{self.sent}"
        produce(self.cfg.kafka, [{"id": ident, **row_event(CLEAR_MALIGNANT)}])
        outputs = read(self.cfg.kafka, self.cfg.kafka.output_topic, expected=self.sent)
        [out] = [r.value for r in outputs if r.value["id"] == ident]
        return int(out["model"]["version"])


def log_text(cfg, index: int = 0) -> str:
    path = Path(cfg.worker.log_dir) / f"worker-{index}.log"
    return path.read_text() if path.exists() else ""


def point(store: ModelStore, version: int) -> None:
    """Move production by hand, as someone with write access could (promote would refuse)."""
    store.book.move("production", version, action="promote", at="now")


def wait_refused(cfg, label: str) -> str:
    wait_until(lambda: f"refused {label} " in log_text(cfg), 30, f"the worker to refuse {label}")
    return next(line for line in log_text(cfg).splitlines() if f"refused {label} " in line)


def test_a_running_worker_refuses_a_planted_code_running_pickle_and_never_runs_it(
    config_factory, tmp_path, worker_process
):
    cfg = config_factory()
    store = ModelStore.from_config(cfg)
    store.promote(register_classifier(store).version)
    worker_process(cfg)
    served = Served(cfg)
    assert served.version() == 1
    marker = tmp_path / "payload-ran"
    second = register_classifier(store, C=0.1)
    plant(store.folder, second.version, code_running_pickle(marker, store.load(1).model))
    point(store, second.version)
    line = wait_refused(cfg, "demo v2")
    assert "joblib pickle" in line and "allow_pickle" in line and "still serving demo v1" in line
    assert served.version() == 1
    assert not marker.exists()


def test_a_pickle_store_is_served_with_allow_pickle_and_refused_without(
    config_factory, worker_process
):
    cfg = config_factory()
    store = ModelStore.from_config(cfg)
    template = register_classifier(store).to_dict()
    write_legacy_version(store.folder, 2, store.load(1).model, template)
    point(store, 2)
    worker_process(cfg)
    wait_until(lambda: "version 2 refused" in log_text(cfg), 30, "the strict worker to refuse")
    assert "[model_store] allow_pickle = true" in log_text(cfg)
    legacy = config_factory(
        name="legacy.toml", model_store={"allow_pickle": True}, worker={"log_dir": "log-legacy"}
    )
    worker_process(legacy, index=1)
    assert Served(legacy).version() == 2
    assert ModelStore.from_config(legacy).policy == ArtifactPolicy(allow_pickle=True)


def test_running_workers_run_each_kind_of_example_before_swapping_a_version_in(
    config_factory, worker_process
):
    cfg = config_factory()
    store = ModelStore.from_config(cfg)
    store.promote(register_classifier(store).version)
    worker_process(cfg)
    served = Served(cfg)
    assert served.version() == 1
    for kind in CLASSIFIER_KINDS:
        bad = register_classifier(store, files=examples_bytes(classifier_case(kind, passing=False)))
        store.promote(bad.version)
        line = wait_refused(cfg, bad.label)
        assert f"'{kind} failing' (line 1): FAILED: expected" in line and ", got " in line
        assert served.version() == 1
    good = register_classifier(
        store, files=examples_bytes(*(classifier_case(k, passing=True) for k in CLASSIFIER_KINDS))
    )
    store.promote(good.version)
    wait_until(lambda: f"loaded {good.label} " in log_text(cfg), 30, "the passing version")
    assert served.version() == good.version
    r = radius(CLEAR_MALIGNANT)
    event = row_event(CLEAR_MALIGNANT, drop_first=True)
    far = register_regressor(store, files=examples_bytes(range_case(event, r + 10, r + 20, "far")))
    store.promote(far.version)
    assert "'far' (line 1): FAILED: expected prediction >=" in wait_refused(cfg, far.label)
    assert served.version() == good.version
    near = register_regressor(store, files=examples_bytes(range_case(event, r - 2, r + 2, "near")))
    store.promote(near.version)
    wait_until(lambda: f"loaded {near.label} " in log_text(cfg), 30, "the passing regressor")
    assert served.version() == near.version
