"""A batch's optional side steps (drift counting, shadow records, the replacement of refused
outputs) never hold the batch back: when one raises, that batch goes without its output, the
failure is counted and logged once per reason, and the batch's predictions are published and
its offsets committed (no broker: the fake transport)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from streamscore import jsonio
from streamscore.config import load_config
from streamscore.wire import OutRecord
from tests.worker.fake_transport import FakeTransport
from tests.worker.test_processor import serving
from worker.service import ScoringWorker


class BrokenDrift:
    """A drift counter with a bug that shows on every batch."""

    version = 1

    def observe(self, *args: Any, **kwargs: Any) -> None:
        raise KeyError("feature 'x7' not in the reference profile")


def worker_over(tmp_path: Path, model_store: Any) -> ScoringWorker:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[kafka]\ninput_topic = "in"\noutput_topic = "out"\ndead_letter_topic = "dlq"\n'
        f'[model_store]\nroot = "{model_store.root}"\nmodel_name = "demo"\n'
        f"[http]\nenabled = false\n",
        encoding="utf-8",
    )
    worker = ScoringWorker(load_config(path, environ={}), worker_id="w-1")
    worker.model = serving(model_store)
    return worker


def failures(worker: ScoringWorker, step: str) -> float:
    value = worker.metrics.registry.get_sample_value(
        "streamscore_side_step_failures_total", {"step": step}
    )
    return value or 0.0


@pytest.mark.parametrize("pipelined", [1, 2], ids=["one-in-flight", "two-in-flight"])
def test_failing_drift_and_shadow_skip_their_output_and_the_batches_commit(
    tmp_path, register, model_store, demo_set, caplog, pipelined
):
    register()
    worker = worker_over(tmp_path, model_store)
    worker.pipeline.depth = pipelined
    worker.drift = BrokenDrift()  # type: ignore[assignment]

    def shadow_batch(model: Any, result: Any) -> int:
        result.records.append(OutRecord("shadow", None, b"half-built", []))
        raise ValueError("shadow's columns do not match production's")

    worker.candidates.shadow_batch = shadow_batch  # type: ignore[method-assign]
    values = [jsonio.dumps(demo_set.event(i, id=f"e-{i}")) for i in range(12)]
    transport = FakeTransport({("in", 0): values})
    transport.subscribe("in", worker.batcher.assign, worker.batcher.revoke)
    worker.pipeline.start(transport)

    with caplog.at_level(logging.ERROR, logger="worker.side_steps"):
        for batch in (transport.poll(0, 4), transport.poll(0, 4), transport.poll(0, 4)):
            worker._handle_batch(transport, batch)  # does not raise
        worker.pipeline.finish()

    assert [jsonio.loads(r.value)["id"] for r in transport.published] == [
        f"e-{i}" for i in range(12)
    ]  # every prediction, no half-built shadow record, nothing for the monitoring topic
    assert transport.committed == {("in", 0): 12}
    assert worker.status.scored == 12 and worker.status.batches == 3
    assert (failures(worker, "drift"), failures(worker, "shadow")) == (3.0, 3.0)
    # The side steps' own log (other loggers' records are captured too when an earlier test
    # of the session configured the root logger).
    logged = [r.getMessage() for r in caplog.records if r.name == "worker.side_steps"]
    assert len(logged) == 2  # once per reason, not once per batch
    assert "KeyError" in logged[0] and "ValueError" in logged[1]


def test_a_replacement_that_raises_drops_the_refused_output_and_the_batch_commits(
    tmp_path, register, model_store, demo_set
):
    register()
    worker = worker_over(tmp_path, model_store)
    worker.processor.refused = lambda *args: (_ for _ in ()).throw(  # type: ignore[method-assign]
        RuntimeError("cannot build the dead letter")
    )
    values = [jsonio.dumps(demo_set.event(i, id=f"e-{i}")) for i in range(3)]
    transport = FakeTransport({("in", 0): values})
    transport.refuse_over_bytes = 1  # every output refused for good
    transport.subscribe("in", worker.batcher.assign, worker.batcher.revoke)
    worker.pipeline.start(transport)

    worker._handle_batch(transport, transport.poll(0, 10))
    worker.pipeline.finish()

    assert transport.published == []
    assert transport.committed == {("in", 0): 3}  # the partition goes on
    assert failures(worker, "replace-refused") == 1.0
