"""``python -m app.monitor_demo``: the monitor rolls a bad version back, in about a minute.

1. start an embedded broker on a free port (owned by the demo, stopped at the end) and write a
   demo config into ``--dir`` with short windows (3 s) and small guards (50 labels per window):
   :data:`app.rollback_demo.MONITOR_SETTINGS`, as ``streamscore demo`` uses;
2. register v1, a logistic regression on scikit-learn's breast-cancer set, and promote it; register
   v2, the same model fitted on flipped labels: deliberately bad, registered without the gate;
3. start a worker (``streamscore worker``) and the monitor (``streamscore monitor``) as processes;
4. publish events at 100/s and, for each, its label 1 s later on the labels topic;
5. after 8 s promote v2 by hand (as an operator skipping the gate would);
6. wait for the monitor to roll production back, print its reason, the live metrics per version,
   and which version scores afterwards; stop everything.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.rollback_demo import (
    LIVE_COLUMNS,
    MONITOR_SETTINGS,
    DelayedLabels,
    DemoWaitFailed,
    LabelledStream,
    live_rows,
    monitor_quality,
    register_breast_cancer,
    wait_for_rollback,
)
from streamscore import jsonio

RATE_PER_S = 100
LABEL_DELAY_S = 1.0
V1_SECONDS = 8.0
TIMEOUT_S = 150.0


def _say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _config(bootstrap: str, http_port: int, monitor_port: int) -> dict[str, Any]:
    run = f"monitor-demo-{int(time.time())}"
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "input_topic": f"{run}.events",
            "output_topic": f"{run}.predictions",
            "dead_letter_topic": f"{run}.dead-letters",
            "control_topic": f"{run}.control",
            "labels_topic": f"{run}.labels",
            "quality_topic": f"{run}.quality",
            "monitoring_topic": f"{run}.monitoring",
            "group_id": f"{run}.workers",
            "session_timeout_ms": 3000,
            "heartbeat_interval_ms": 1000,
            "request_timeout_ms": 10000,
        },
        "model_store": {"root": "models", "model_name": "breast-cancer"},
        "worker": {"log_dir": "log", "reload_poll_ms": 100, "max_wait_ms": 20},
        "http": {"enabled": True, "port": http_port},
        "monitor": {
            **MONITOR_SETTINGS,
            "group_id": f"{run}.monitor",
            "state_path": "monitor/join.sqlite",
            "cooldown_s": 120,
            "port": monitor_port,
        },
    }


def _toml(tables: dict[str, dict[str, Any]]) -> str:
    """The demo config as TOML: tables of strings, numbers and booleans (JSON spells them as
    TOML does)."""
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {jsonio.dumps(value).decode()}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


def _register(cfg: Any) -> tuple[int, int]:
    from model_store import ModelStore

    store = ModelStore.from_config(cfg)
    versions = []
    for flipped in (False, True):
        manifest = register_breast_cancer(store, flipped=flipped)
        versions.append(manifest.version)
        _say(
            f"registered v{manifest.version}"
            + (" (flipped labels, no gate)" if flipped else "")
            + f": held-out accuracy {manifest.metrics['accuracy']:.3f}"
        )
    store.promote(versions[0], reason="demo: the good model")
    return versions[0], versions[1]


def _events() -> list[dict[str, Any]]:
    """The breast-cancer rows as events, each with its known ``label``."""
    from sklearn.datasets import load_breast_cancer

    from training.demo_data import snake_case

    data = load_breast_cancer()
    names = [snake_case(n) for n in data.feature_names]
    return [
        {**dict(zip(names, row.tolist(), strict=True)), "label": int(label)}
        for row, label in zip(data.data, data.target, strict=True)
    ]


def run(folder: Path) -> int:
    from kafka import KafkaProducer

    from broker import EmbeddedBroker, free_port
    from model_store import ModelStore
    from model_store.release import promote_and_announce
    from streamscore.config import load_config
    from streamscore.kafka_admin import client_kwargs, ensure_topics

    if folder.exists():
        shutil.rmtree(folder)  # the demo's own folder: models, state and logs of the last run
    folder.mkdir(parents=True)
    port = free_port()
    with EmbeddedBroker(host="127.0.0.1", port=port, run_dir=folder / "broker") as broker:
        path = folder / "config.toml"
        monitor_port = free_port()
        path.write_text(_toml(_config(broker.address, free_port(), monitor_port)))
        cfg = load_config(path, environ={})
        ensure_topics(cfg.kafka)
        ensure_topics(cfg.kafka, [cfg.kafka.labels_topic])
        good, bad = _register(cfg)
        store = ModelStore.from_config(cfg)
        logs = folder / "log"
        logs.mkdir(exist_ok=True)
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "streamscore", name, "--config", str(path)],
                stdout=(logs / f"{name}.out").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for name in ("worker", "monitor")
        ]
        delayed = DelayedLabels(cfg.kafka, cfg.kafka.labels_topic, LABEL_DELAY_S)
        producer = KafkaProducer(**client_kwargs(cfg.kafka), linger_ms=5)
        events = _events()
        random.Random(0).shuffle(events)
        stream = LabelledStream(
            producer, cfg.kafka.input_topic, events, delayed, rate=RATE_PER_S, prefix="ev"
        )
        try:
            _say(f"worker and monitor started (logs in {logs}); monitor on :{monitor_port}")
            stream.start()
            _say(f"publishing {RATE_PER_S} events/s, each label {LABEL_DELAY_S:g} s later")
            time.sleep(V1_SECONDS)
            event = promote_and_announce(
                store, cfg.kafka, bad, "production", reason="demo: promoted by hand, no gate"
            ).event
            _say(f"promoted v{event.to_version} by hand (production was v{event.from_version})")
            try:
                rolled = wait_for_rollback(
                    store, "production", bad, TIMEOUT_S, logs=f"{logs}/monitor.out"
                )
            except DemoWaitFailed as exc:
                _say(str(exc))
                return 1
            _say(f"AUTOMATIC ROLLBACK v{rolled.from_version} -> v{rolled.to_version}")
            _say(f"reason: {rolled.reason}")
            before = monitor_quality(monitor_port).get("versions", {})
            time.sleep(3.0)
            quality = monitor_quality(monitor_port)
            after = quality.get("versions", {})
            for row in live_rows(quality, store):
                cells = dict(zip(LIVE_COLUMNS, row.cells(), strict=True))
                _say(", ".join(f"{k} {v}" for k, v in cells.items()))
            grown = {
                v: after[v]["predictions"] - before.get(v, {}).get("predictions", 0) for v in after
            }
            _say(f"predictions in the 3 s after the rollback, by version: {grown}")
            return 0 if rolled.to_version == good else 1
        finally:
            stream.stop()
            producer.close(timeout=5)
            delayed.close()
            for child in children:
                child.terminate()
            for child in children:
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.monitor_demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("var/monitor-demo"))
    args = parser.parse_args(argv)
    return run(args.dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
