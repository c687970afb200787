"""The automatic rollback as both demos show it (``streamscore demo``, ``app.monitor_demo``).

What they share:

* :data:`MONITOR_SETTINGS`: the monitor with short windows and a small label guard, so the rule
  can fire within seconds at the demos' volume (the defaults want 3 windows of an hour with 500
  labels each);
* :func:`register_breast_cancer`: a logistic regression on scikit-learn's breast-cancer set, or
  the same fitted on flipped labels (deliberately bad, registered without the gate), with its
  held-out metrics against the *true* labels and its reference profile;
* :class:`DelayedLabels`: each scored event's label, published on ``[kafka] labels_topic`` a
  fixed delay after the event (ground truth that comes later, as in production);
* :class:`LabelledStream`: events at a fixed rate, each with its delayed label;
* :func:`wait_for_rollback`: the monitor's move of the alias, or :class:`DemoWaitFailed` naming
  what was waited for;
* :func:`live_rows`: per version, held-out next to live metrics from the monitor's ``/quality``.
"""

from __future__ import annotations

import collections
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamscore import jsonio
from streamscore.exceptions import StreamscoreError

if TYPE_CHECKING:
    from model_store import Manifest, ModelStore
    from model_store.aliases import AliasEvent
    from streamscore.config import KafkaConfig

#: ``[monitor]`` settings of the demos' monitor: 3-second windows by prediction time, a window is
#: evidence with 50 labelled predictions, the rule runs twice a second; the rest as configured.
MONITOR_SETTINGS: dict[str, int | bool] = {
    "window_s": 3,
    "min_labels_per_window": 50,
    "consecutive_windows": 3,
    "evaluate_interval_ms": 500,
    "label_wait_s": 600,
    "auto_rollback": True,
}


class DemoWaitFailed(StreamscoreError):
    """A demo step did not see its results in time, or a process it started exited."""


def monitor_environ(
    settings: Mapping[str, Any], *, group_id: str, state_path: Path, port: int
) -> dict[str, str]:
    """``STREAMSCORE__MONITOR__*`` overrides for a ``streamscore monitor`` child process."""
    values = {**settings, "group_id": group_id, "state_path": str(state_path), "port": port}
    return {
        f"STREAMSCORE__MONITOR__{key.upper()}": (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
        for key, value in values.items()
    }


def breast_cancer_split() -> tuple[Any, Any, Any, Any, list[str]]:
    """scikit-learn's breast-cancer set, 80/20 (seed 0), and its feature names as events spell
    them (``mean_radius``)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    from training.demo_data import snake_case

    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.2, random_state=0
    )
    return X_train, X_test, y_train, y_test, [snake_case(n) for n in data.feature_names]


def register_breast_cancer(store: ModelStore, *, flipped: bool) -> Manifest:
    """Register (never promote) a scaled logistic regression on the breast-cancer set; with
    ``flipped`` it learns ``1 - label``: it predicts the wrong class almost always, and its
    held-out metrics (measured against the true labels) say so. No gate is run."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from model_store import FeatureSpec
    from training.reference import reference_profile

    X_train, X_test, y_train, y_test, names = breast_cancer_split()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(X_train, 1 - y_train if flipped else y_train)
    proba = model.predict_proba(X_test)
    features = [FeatureSpec(n, "float") for n in names]
    return store.register(
        model,
        task="classification",
        features=features,
        classes=[0, 1],
        metrics={
            "accuracy": float(accuracy_score(y_test, proba.argmax(axis=1))),
            "log_loss": float(log_loss(y_test, proba)),
        },
        estimator="LogisticRegression" + (" fitted on flipped labels" if flipped else ""),
        files=reference_profile(model, features, X_train, X_test, task="classification"),
    )


class DelayedLabels:
    """Publishes ``{"id": ..., "label": ...}`` to ``topic`` ``delay_s`` after :meth:`add`."""

    def __init__(self, kafka: KafkaConfig, topic: str, delay_s: float) -> None:
        from kafka import KafkaProducer

        from streamscore.kafka_admin import client_kwargs

        self.topic = topic
        self.delay_s = delay_s
        self.producer = KafkaProducer(**client_kwargs(kafka), linger_ms=5)
        self.sent = 0
        self._due: collections.deque[tuple[float, bytes, bytes]] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delayed-labels", daemon=True)
        self._thread.start()

    def add(self, pairs: Iterable[tuple[str, Any]]) -> None:
        """Labels of events sent now, by event id."""
        due = time.monotonic() + self.delay_s
        rows = [
            (due, str(i).encode(), jsonio.dumps({"id": str(i), "label": label}))
            for i, label in pairs
        ]
        with self._lock:
            self._due.extend(rows)

    def _send_due(self, now: float) -> None:
        while True:
            with self._lock:
                if not self._due or self._due[0][0] > now:
                    return
                _, key, value = self._due.popleft()
            self.producer.send(self.topic, value, key=key)
            self.sent += 1

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self._send_due(time.monotonic())

    def close(self) -> None:
        """Send what is still waiting (now), flush and close."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._send_due(float("inf"))
        self.producer.flush(timeout=10)
        self.producer.close(timeout=5)


class LabelledStream:
    """Events at ``rate`` per second in a thread, ids ``<prefix>-<n>``; each event's ``label``
    field goes to ``labels`` (:class:`DelayedLabels`)."""

    def __init__(
        self,
        producer: Any,
        topic: str,
        events: Sequence[Mapping[str, Any]],
        labels: DelayedLabels,
        *,
        rate: float,
        prefix: str,
        id_field: str = "id",
        label_field: str = "label",
    ) -> None:
        self.producer, self.topic, self.events, self.labels = producer, topic, events, labels
        self.rate, self.prefix = rate, prefix
        self.id_field, self.label_field = id_field, label_field
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labelled-stream", daemon=True)

    def start(self) -> LabelledStream:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            batch = []
            while self.sent < (time.monotonic() - started) * self.rate:
                source = self.events[self.sent % len(self.events)]
                event = {**source, self.id_field: f"{self.prefix}-{self.sent}"}
                key = event[self.id_field].encode()
                self.producer.send(self.topic, jsonio.dumps(event), key=key)
                batch.append((event[self.id_field], source[self.label_field]))
                self.sent += 1
            self.labels.add(batch)
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self.producer.flush(timeout=10)


def wait_for_rollback(
    store: ModelStore,
    alias: str,
    version: int,
    timeout_s: float,
    *,
    check: Callable[[], None] = lambda: None,
    logs: str = "the monitor's log",
) -> AliasEvent:
    """The alias move that rolled ``version`` back (the latest ``rollback`` from it), within
    ``timeout_s``; ``check`` raises when a process the demo needs has exited."""
    deadline = time.monotonic() + timeout_s
    while True:
        for event in reversed(store.history(alias)):
            if event.action == "rollback" and event.from_version == version:
                return event
            if event.to_version == version:
                break  # nothing after the promotion of ``version`` rolled it back (yet)
        if time.monotonic() >= deadline:
            raise DemoWaitFailed(
                f"waited {timeout_s:g} s for the monitor's automatic rollback of {alias!r} "
                f"v{version}: none came ([demo] wait_timeout_ms); see {logs}"
            )
        check()
        time.sleep(0.2)


def monitor_quality(port: int) -> dict[str, Any]:
    """The monitor's ``/quality`` JSON (``{}`` while it is not up)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/quality", timeout=2) as r:
            data: dict[str, Any] = jsonio.loads(r.read())
            return data
    except OSError:
        return {}


@dataclass(frozen=True)
class LiveRow:
    """One version: held-out (manifest) next to live (monitor) metrics."""

    version: int
    held_out_accuracy: float | None
    live_accuracy: float | None
    held_out_log_loss: float | None
    live_log_loss: float | None
    labelled: int
    predictions: int

    def cells(self) -> list[str]:
        def f(value: float | None) -> str:
            return "–" if value is None else f"{value:.3f}"

        return [
            f"v{self.version}",
            f(self.held_out_accuracy),
            f(self.live_accuracy),
            f(self.held_out_log_loss),
            f(self.live_log_loss),
            f"{self.labelled:,}",
            f"{self.predictions:,}",
        ]


LIVE_COLUMNS = (
    "version",
    "held-out accuracy",
    "live accuracy",
    "held-out log loss",
    "live log loss",
    "labelled",
    "predictions",
)


def live_rows(
    quality: Mapping[str, Any], store: ModelStore, versions: Iterable[int] | None = None
) -> list[LiveRow]:
    """Rows of the versions the monitor has seen (or of ``versions``), by version."""
    live = quality.get("versions") or {}
    wanted = sorted(int(v) for v in live) if versions is None else sorted(versions)
    rows = []
    for version in wanted:
        metrics = live.get(str(version)) or {}
        held_out = store.manifest(version).metrics
        rows.append(
            LiveRow(
                version=version,
                held_out_accuracy=held_out.get("accuracy"),
                live_accuracy=metrics.get("accuracy"),
                held_out_log_loss=held_out.get("log_loss"),
                live_log_loss=metrics.get("log_loss"),
                labelled=int(metrics.get("labelled") or 0),
                predictions=int(metrics.get("predictions") or 0),
            )
        )
    return rows
