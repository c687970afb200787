"""The peer: the same scoring job in Quix Streams. A standalone script, run by the interpreter
of the side virtualenv that has quixstreams (``bench/.venv-quix``):

    python bench/quix_peer.py SPEC.json RESULT.json

JSON in (Quix's ``json`` deserializer), one ``predict_proba`` per record in an ``apply``, JSON
out (``to_topic`` with Quix's ``json`` serializer), at-least-once with Quix's default commit
interval. The result holds ``checkpoints``: ``(time, records through apply)`` pairs.
"""

from __future__ import annotations

import os
import sys

# This file's folder must not shadow installed packages (run as a script, it is sys.path[0]).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


class _State:
    def __init__(self) -> None:
        self.done = 0
        self.stop_at: float | None = None
        self.stopped = False
        self.cpu0: tuple[float, float] | None = None
        self.cores: float | None = None  # CPU seconds per wall second (all threads)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import joblib
    from quixstreams import Application

    model = joblib.load(spec["artifact"])
    features = spec["features"]
    classes = model.classes_.tolist()
    model_ref = {"name": spec["model_name"], "version": 1}
    planned, budget = spec["events"], spec["warmup_s"] + spec["max_seconds"]

    state_dir = tempfile.mkdtemp(prefix="quix-state-")
    app = Application(
        broker_address=spec["bootstrap"],
        consumer_group=spec["group"],
        auto_offset_reset="earliest",
        loglevel="WARNING",
        state_dir=state_dir,
        consumer_extra_config={"session.timeout.ms": 3000, "heartbeat.interval.ms": 1000},
    )
    source = app.topic(spec["input"], value_deserializer="json")
    sink = app.topic(spec["output"], value_serializer="json")

    checkpoints: list[tuple[float, int]] = []
    state = _State()

    def score(event: dict[str, Any]) -> dict[str, Any]:
        if state.stop_at is None:
            now = time.time()
            state.stop_at = now + budget
            checkpoints.append((now, 0))
            state.cpu0 = (time.process_time(), time.monotonic())
        row = [event[name] for name in features]
        proba = model.predict_proba([row])[0]
        best = int(proba.argmax())
        out = {
            "id": event["id"],
            "prediction": classes[best],
            "probabilities": {str(c): float(p) for c, p in zip(classes, proba, strict=True)},
            "model": model_ref,
            "scored_at": int(time.time() * 1000),
        }
        state.done += 1
        done = state.done
        if done % 50 == 0 or done >= planned:
            now = time.time()
            checkpoints.append((now, done))
            if (done >= planned or now > state.stop_at) and not state.stopped:
                state.stopped = True
                if state.cpu0 is not None:
                    wall = time.monotonic() - state.cpu0[1]
                    state.cores = round((time.process_time() - state.cpu0[0]) / wall, 2)
                app.stop()
        return out

    sdf = app.dataframe(source)
    sdf = sdf.apply(score)
    sdf.to_topic(sink)

    # Bounded: a watchdog stops the app if nothing arrives or it runs far past its budget.
    def watchdog() -> None:
        hard = time.monotonic() + spec["join_timeout_s"] + budget + 30
        while time.monotonic() < hard and not state.stopped:
            time.sleep(0.5)
            if state.stop_at is None and time.monotonic() > hard - budget - 30:
                break
        if not state.stopped:
            state.stopped = True
            app.stop()

    threading.Thread(target=watchdog, daemon=True).start()
    app.run()
    return {
        "checkpoints": checkpoints,
        "cpu_cores": state.cores,
        "quixstreams": importlib.metadata.version("quixstreams"),
        "confluent_kafka": importlib.metadata.version("confluent-kafka"),
    }


def _vm_hwm_kib() -> int | None:
    """bench/peak_rss.py's, loaded by its path (this script runs outside the bench package)."""
    spec = importlib.util.spec_from_file_location("peak_rss", os.path.join(_HERE, "peak_rss.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kib: int | None = module.vm_hwm_kib()
    return kib


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    spec = json.loads(Path(argv[0]).read_text())
    result = run(spec)
    result["rss_kib"] = _vm_hwm_kib()
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
