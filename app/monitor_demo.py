"""``python -m app.monitor_demo``: the monitor rolls a bad version back, in about a minute.

1. start an embedded broker on a free port (owned by the demo, stopped at the end) and write a
   demo config into ``--dir`` with short windows (3 s) and small guards (50 labels per window);
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
import collections
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

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
            "group_id": f"{run}.monitor",
            "state_path": "monitor/join.sqlite",
            "window_s": 3,
            "label_wait_s": 600,
            "min_labels_per_window": 50,
            "consecutive_windows": 3,
            "cooldown_s": 120,
            "evaluate_interval_ms": 500,
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
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from model_store import FeatureSpec, ModelStore

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.2, random_state=0
    )
    store = ModelStore.from_config(cfg)
    versions = []
    for flipped in (False, True):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        model.fit(X_train, 1 - y_train if flipped else y_train)
        proba = model.predict_proba(X_test)
        manifest = store.register(
            model,
            task="classification",
            features=[FeatureSpec(n, "float") for n in names],
            classes=[0, 1],
            metrics={
                "accuracy": float(accuracy_score(y_test, proba.argmax(axis=1))),
                "log_loss": float(log_loss(y_test, proba)),
            },
            estimator="LogisticRegression" + (" fitted on flipped labels" if flipped else ""),
        )
        versions.append(manifest.version)
        _say(
            f"registered v{manifest.version}"
            + (" (flipped labels, no gate)" if flipped else "")
            + f": held-out accuracy {manifest.metrics['accuracy']:.3f}"
        )
    store.promote(versions[0], reason="demo: the good model")
    return versions[0], versions[1]


class _Publisher:
    """Events at a fixed rate; each event's label ``LABEL_DELAY_S`` later."""

    def __init__(self, cfg: Any) -> None:
        from kafka import KafkaProducer
        from sklearn.datasets import load_breast_cancer

        from streamscore.kafka_admin import client_kwargs

        data = load_breast_cancer()
        self.names = [n.replace(" ", "_") for n in data.feature_names]
        self.X, self.y = data.data, data.target
        self.cfg = cfg
        self.producer = KafkaProducer(**client_kwargs(cfg.kafka), linger_ms=5)
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        k = self.cfg.kafka
        due: collections.deque[tuple[float, bytes, bytes]] = collections.deque()
        started = time.monotonic()
        rng = np.random.default_rng(0)
        while not self.stop.is_set():
            now = time.monotonic()
            while self.sent < (now - started) * RATE_PER_S:
                row = int(rng.integers(len(self.y)))
                key = f"ev-{self.sent}".encode()
                body = {
                    "id": key.decode(),
                    **dict(zip(self.names, self.X[row].tolist(), strict=True)),
                }
                self.producer.send(k.input_topic, jsonio.dumps(body), key=key)
                label = {"id": key.decode(), "label": int(self.y[row])}
                due.append((now + LABEL_DELAY_S, key, jsonio.dumps(label)))
                self.sent += 1
            while due and due[0][0] <= now:
                _, key, value = due.popleft()
                self.producer.send(k.labels_topic, value, key=key)
            time.sleep(0.01)
        self.producer.flush(timeout=10)
        self.producer.close(timeout=5)


def _quality(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/quality", timeout=2) as r:
            data: dict[str, Any] = jsonio.loads(r.read())
            return data
    except OSError:
        return {}


def run(folder: Path) -> int:
    from broker import EmbeddedBroker, free_port
    from model_store import ModelStore
    from model_store.release import promote_and_announce
    from streamscore.config import load_config
    from streamscore.kafka_admin import ensure_topics

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
        publisher = _Publisher(cfg)
        try:
            _say(f"worker and monitor started (logs in {logs}); monitor on :{monitor_port}")
            publisher.thread.start()
            _say(f"publishing {RATE_PER_S} events/s, each label {LABEL_DELAY_S:g} s later")
            time.sleep(V1_SECONDS)
            event = promote_and_announce(
                store, cfg.kafka, bad, "production", reason="demo: promoted by hand, no gate"
            ).event
            _say(f"promoted v{event.to_version} by hand (production was v{event.from_version})")
            deadline = time.monotonic() + TIMEOUT_S
            rolled = None
            while time.monotonic() < deadline:
                last = store.history("production")[-1]
                if last.action == "rollback":
                    rolled = last
                    break
                time.sleep(0.5)
            if rolled is None:
                _say(f"no automatic rollback within {TIMEOUT_S:g} s: see {logs}/monitor.out")
                return 1
            _say(f"AUTOMATIC ROLLBACK v{rolled.from_version} -> v{rolled.to_version}")
            _say(f"reason: {rolled.reason}")
            before = _quality(monitor_port).get("versions", {})
            time.sleep(3.0)
            after = _quality(monitor_port).get("versions", {})
            for version in sorted(after, key=int):
                live = after[version]
                _say(
                    f"v{version} live: accuracy {live.get('accuracy') or 0:.3f}, log loss "
                    f"{live.get('log_loss') or 0:.3f}, ROC AUC {live.get('roc_auc') or 0:.3f}, "
                    f"{live['labelled']:,} labelled of {live['predictions']:,} predictions"
                )
            grown = {
                v: after[v]["predictions"] - before.get(v, {}).get("predictions", 0) for v in after
            }
            _say(f"predictions in the 3 s after the rollback, by version: {grown}")
            return 0 if rolled.to_version == good else 1
        finally:
            publisher.stop.set()
            publisher.thread.join(timeout=15)
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
