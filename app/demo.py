"""``streamscore demo``: the whole loop on the embedded broker, in about a minute.

1. start the embedded broker (or use ``[kafka] bootstrap_servers`` if it points elsewhere);
2. export the breast-cancer data set that ships with scikit-learn, holding rows back as events;
3. train, gate and promote version A (logistic regression); register version B as a candidate;
4. start two worker processes under the supervisor;
5. publish the held-back rows (repeated to make a backlog) plus three malformed events;
6. wait until every event is scored or dead-lettered; print results, outcomes, throughput and the
   accuracy against the known labels;
7. stream at a fixed rate and promote version B mid-stream: every worker swaps within a second;
8. promote a deliberately bad version (fitted on flipped labels, registered without the gate)
   while events keep streaming: ``streamscore monitor`` joins each prediction with its label
   (published ``[demo] label_delay_ms`` after the event, for every event the demo scores) and
   rolls production back automatically; print its reason and the live metrics per version;
9. stop the workers and the monitor cleanly (the broker keeps running: ``streamscore broker
   stop``).

The demo's monitor runs with short windows (``[demo] monitor_window_s``, 3 s) and a small guard
(``[demo] monitor_min_labels``, 50 labelled predictions per window), a state file of its own
(``demo-monitor.sqlite`` beside ``[monitor] state_path``, fresh each run) and a consumer group
of its own per run (:mod:`app.rollback_demo` holds what it shares with
``python -m app.monitor_demo``).

Every run reports only what it ran: its event ids carry a run id, and results are read from
the topics' end offsets taken before it published, so a second run on the same broker prints
its own numbers. A wait that runs out (``[demo] wait_timeout_ms``), or workers that exit, fail
the demo (exit 2) with what it waited for (the monitor's rollback included).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from app.clitools import config_option, console, pass_state
from app.rollback_demo import DemoWaitFailed
from streamscore import jsonio, wire
from streamscore.config import Config, resolve_config_path, with_overrides
from streamscore.exceptions import StreamscoreError

if TYPE_CHECKING:
    from app.rollback_demo import DelayedLabels
    from model_store import ModelStore
    from model_store.aliases import AliasEvent

STREAM_RATE = 2000.0
STREAM_SECONDS = 4.0
#: Events/s while the bad version is in production (each 3-second window then has ~600).
ROLLBACK_RATE = 200.0
#: How long the demo keeps streaming after the rollback, to show who scores then.
AFTER_ROLLBACK_S = 2.0


def _section(title: str) -> None:
    console.rule(f"[bold]{title}")


def run_demo(cfg: Config, config_path: Path) -> None:
    from kafka import KafkaProducer

    from app.rollback_demo import DelayedLabels
    from streamscore.kafka_admin import client_kwargs
    from training import export_demo_data

    _section("1. embedded Kafka broker")
    _start_broker(cfg)

    _section("2. demo data (scikit-learn's breast-cancer set)")
    data = export_demo_data(cfg)
    console.print(
        f"training rows: {data.train_rows} -> {data.train_path}\n"
        f"held-back events: {data.event_rows} -> {data.events_path}"
    )

    _section("3. train, gate, register, promote")
    store, first, candidate = _train_two_versions(cfg)

    run = f"demo-{uuid.uuid4().hex[:6]}"
    console.print(f"this run's event ids start with {run}-")
    events = [e for e in _read_jsonl(data.events_path)]
    labels = {e["id"]: e.get("label") for e in events}
    repeat = cfg.demo.backlog_repeat
    backlog = [{**e, "id": f"{run}-{e['id']}-r{k}"} for k in range(repeat) for e in events]
    bad = [
        b"{not json",
        b"[1, 2, 3]",
        jsonio.dumps({"id": f"{run}-bad-missing", "mean_radius": 1.0}),
    ]
    timeout_s = cfg.demo.wait_timeout_ms / 1000
    outputs_reader = _RunReader(cfg, cfg.kafka.output_topic)
    dead_reader = _RunReader(cfg, cfg.kafka.dead_letter_topic)
    delayed = DelayedLabels(cfg.kafka, cfg.kafka.labels_topic, cfg.demo.label_delay_ms / 1000)

    _section("4. two worker processes and the monitor")
    workers = _start_workers(cfg, config_path)
    monitor = _start_monitor(cfg, config_path, run)
    alive = _alive_check(workers, monitor.process, cfg)
    try:
        _section(f"5. publish {len(backlog):,} events + {len(bad)} malformed ones")
        producer = KafkaProducer(**client_kwargs(cfg.kafka), linger_ms=5, batch_size=262_144)
        started = time.perf_counter()
        for event in backlog:
            producer.send(cfg.kafka.input_topic, jsonio.dumps(event), key=event["id"].encode())
        bad_sent = [producer.send(cfg.kafka.input_topic, value) for value in bad]
        producer.flush()
        delayed.add((e["id"], e["label"]) for e in backlog)
        bad_at = {(f.get().partition, f.get().offset) for f in bad_sent}
        console.print(
            f"published in {time.perf_counter() - started:.1f}s; their labels follow "
            f"{cfg.demo.label_delay_ms / 1000:g} s later on {cfg.kafka.labels_topic}"
        )

        _section("6. results")
        total = len(backlog) + len(bad)
        wanted = {e["id"] for e in backlog}
        outputs = outputs_reader.wait(
            lambda r: _id_of(r) in wanted,
            len(wanted),
            f"the predictions of this run's {len(wanted):,} events",
            timeout_s,
            alive,
        )
        dead = dead_reader.wait(
            lambda r: _source_of(r) in bad_at,
            len(bad_at),
            f"the dead letters of this run's {len(bad)} malformed events",
            timeout_s,
            alive,
        )
        _print_results(outputs, dead, labels, total, run)

        _section("7. promote version B mid-stream")
        _stream_and_swap(
            cfg, producer, store, events, candidate, run, outputs_reader, timeout_s, alive, delayed
        )

        _section("8. promote a bad version: the monitor rolls it back")
        _bad_version_rolled_back(
            cfg, producer, store, events, [first, candidate], run, monitor, delayed, alive
        )
    finally:
        outputs_reader.close()
        dead_reader.close()
        delayed.close()
        _section("9. stop")
        _stop_workers(workers, monitor.process)


def _start_broker(cfg: Config) -> None:
    """The embedded broker when the config points at it (else the configured cluster), and
    the topics."""
    from broker import EmbeddedBroker
    from streamscore.kafka_admin import ensure_topics

    embedded = f"{cfg.broker.host}:{cfg.broker.port}"
    if cfg.kafka.bootstrap_servers == embedded:
        status = EmbeddedBroker(cfg.broker).start()
        console.print(f"broker at {embedded} (pid {status.pid})")
    else:
        console.print(f"using the configured cluster at {cfg.kafka.bootstrap_servers}")
    ensure_topics(cfg.kafka)


def _train_two_versions(cfg: Config) -> tuple[ModelStore, int, int]:
    """Version A trained and promoted, version B registered as a candidate; their numbers."""
    from model_store import ModelStore
    from training import train

    # force: the demo shows a swap between two fresh versions, even on a store that has them
    first = train(cfg, promote=True, force=True, progress=True)
    console.print(
        f"version {first.manifest.version}: gate {'passed' if first.verdict.passed else 'failed'}"
    )
    second_cfg = with_overrides(
        cfg,
        training={
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "estimator_params": {"max_iter": 100, "random_state": 0},
        },
    )
    second = train(second_cfg, promote=False, force=True, progress=True)
    console.print(f"version {second.manifest.version} registered as a candidate")
    store = ModelStore.from_config(cfg)
    _print_models(store, cfg.model_store.alias)
    return store, first.manifest.version, second.manifest.version


def _start_workers(cfg: Config, config_path: Path) -> subprocess.Popen[bytes]:
    # ``python -m streamscore``: tests/app/test_entry_points.py checks that it exists.
    from worker.supervisor import die_with_parent

    workers = subprocess.Popen(  # they stop with the demo, even when it is killed
        [sys.executable, "-m", "streamscore", "--config", str(config_path), "worker", "-n", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent(os.getpid()),
    )
    console.print(f"supervisor pid {workers.pid}; logs in {cfg.worker.log_dir}")
    return workers


def _monitor_state(cfg: Config) -> Path:
    return cfg.monitor.state_path.parent / "demo-monitor.sqlite"


@dataclass(frozen=True)
class _Monitor:
    process: subprocess.Popen[bytes]
    port: int  # its /quality


def _start_monitor(cfg: Config, config_path: Path, run: str) -> _Monitor:
    """``streamscore monitor`` with the demo's short windows, a fresh state and a group of this
    run's own."""
    from app.rollback_demo import MONITOR_SETTINGS, monitor_environ
    from broker import free_port
    from worker.supervisor import die_with_parent

    state = _monitor_state(cfg)
    for stale in (
        state,
        state.with_name(state.name + "-wal"),
        state.with_name(state.name + "-shm"),
    ):
        stale.unlink(missing_ok=True)  # the demo's own state: each run starts from nothing
    port = free_port()
    settings = {
        **MONITOR_SETTINGS,
        "window_s": cfg.demo.monitor_window_s,
        "min_labels_per_window": cfg.demo.monitor_min_labels,
    }
    env = {
        **os.environ,
        **monitor_environ(
            settings, group_id=f"{cfg.monitor.group_id}-{run}", state_path=state, port=port
        ),
    }
    monitor = subprocess.Popen(
        [sys.executable, "-m", "streamscore", "--config", str(config_path), "monitor"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        preexec_fn=die_with_parent(os.getpid()),
    )
    console.print(
        f"monitor pid {monitor.pid}: {settings['window_s']} s windows, "
        f"{settings['min_labels_per_window']} labels per window, "
        f"{settings['consecutive_windows']} bad windows roll back; /quality on :{port}; log "
        f"{cfg.worker.log_dir / 'monitor.log'}"
    )
    return _Monitor(monitor, port)


def _stream_and_swap(
    cfg: Config,
    producer: Any,
    store: ModelStore,
    events: list[dict[str, Any]],
    version: int,
    run: str,
    reader: _RunReader,
    timeout_s: float,
    alive: Callable[[], None],
    delayed: DelayedLabels,
) -> None:
    """Stream at a fixed rate and promote ``version`` halfway through; show the swap. Each
    streamed event's label follows on the labels topic."""
    from model_store.release import promote_and_announce

    n_stream = int(STREAM_RATE * STREAM_SECONDS)
    promoted_at: list[float] = []

    def promote_later() -> None:
        time.sleep(STREAM_SECONDS / 2)
        move = promote_and_announce(
            store, cfg.kafka, version, cfg.model_store.alias, reason="demo swap"
        )
        promoted_at.append(dt.datetime.fromisoformat(move.event.at).timestamp())

    swapper = threading.Thread(target=promote_later)
    swapper.start()
    t0 = time.perf_counter()
    streamed_ids: set[str] = set()
    for i in range(n_stream):
        due = t0 + i / STREAM_RATE
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        event = {**events[i % len(events)], "id": f"{run}-stream-{i}"}
        streamed_ids.add(event["id"])
        producer.send(cfg.kafka.input_topic, jsonio.dumps(event), key=event["id"].encode())
        delayed.add([(event["id"], event["label"])])
    producer.flush()
    swapper.join()
    streamed = reader.wait(
        lambda r: _id_of(r) in streamed_ids,
        n_stream,
        f"the predictions of this run's {n_stream:,} streamed events",
        timeout_s,
        alive,
    )
    _print_swap(streamed, promoted_at[0], version)


def _stop_workers(workers: subprocess.Popen[bytes], monitor: subprocess.Popen[bytes]) -> None:
    for child in (workers, monitor):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in (workers, monitor):
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    console.print(
        f"workers stopped (exit {workers.returncode}), monitor stopped (exit "
        f"{monitor.returncode}). The broker keeps running: `streamscore broker stop` ends it.\n"
        "Next: `streamscore tail`, `streamscore tail --dead-letters`, "
        "`streamscore models history`."
    )


def _bad_version_rolled_back(
    cfg: Config,
    producer: Any,
    store: ModelStore,
    events: list[dict[str, Any]],
    versions: list[int],
    run: str,
    monitor: _Monitor,
    delayed: DelayedLabels,
    alive: Callable[[], None],
) -> None:
    """Register a model fitted on flipped labels (no gate), promote it under a labelled stream,
    and wait for the monitor to roll it back; print its reason and the live metrics."""
    from app.rollback_demo import (
        LIVE_COLUMNS,
        LabelledStream,
        live_rows,
        monitor_quality,
        register_breast_cancer,
        wait_for_rollback,
    )
    from model_store.release import promote_and_announce

    alias = cfg.model_store.alias
    bad = register_breast_cancer(store, flipped=True)
    versions = [*versions, bad.version]
    console.print(
        f"version {bad.version} registered without the gate: {bad.estimator}, held-out accuracy "
        f"{bad.metrics['accuracy']:.3f}"
    )
    reader = _RunReader(cfg, cfg.kafka.output_topic)
    prefix = f"{run}-live"
    stream = LabelledStream(
        producer,
        cfg.kafka.input_topic,
        events,
        delayed,
        rate=ROLLBACK_RATE,
        prefix=prefix,
        id_field=cfg.worker.id_field,
    ).start()
    try:
        move = promote_and_announce(store, cfg.kafka, bad.version, alias, reason="demo: no gate")
        good = move.event.from_version
        console.print(
            f"promoted v{bad.version} by hand over v{good} (as an operator skipping the gate); "
            f"streaming {ROLLBACK_RATE:g} events/s, each label "
            f"{cfg.demo.label_delay_ms / 1000:g} s later"
        )
        started = time.monotonic()
        with console.status(f"waiting for the monitor to roll v{bad.version} back"):
            rolled = wait_for_rollback(
                store,
                alias,
                bad.version,
                cfg.demo.wait_timeout_ms / 1000,
                check=alive,
                logs=str(cfg.worker.log_dir / "monitor.log"),
            )
        console.print(
            f"[bold]AUTOMATIC ROLLBACK v{rolled.from_version} -> v{rolled.to_version}[/bold] "
            f"{time.monotonic() - started:.1f} s after the promotion\nreason: {rolled.reason}"
        )
        time.sleep(AFTER_ROLLBACK_S)
    finally:
        stream.stop()
    try:
        scored = reader.wait(
            lambda r: str(_id_of(r)).startswith(prefix + "-"),
            stream.sent,
            f"the predictions of this run's {stream.sent:,} events streamed in step 8",
            cfg.demo.wait_timeout_ms / 1000,
            alive,
        )
    finally:
        reader.close()
    quality = monitor_quality(monitor.port)
    table = Table(title="held-out vs live, per version (the monitor's /quality)")
    for column in LIVE_COLUMNS:
        table.add_column(column, justify="left" if column == "version" else "right")
    seen = {int(v) for v in quality.get("versions", {})}
    for row in live_rows(quality, store, [v for v in versions if v in seen]):
        table.add_row(*row.cells())
    console.print(table)
    _print_after_rollback(scored, rolled, bad.version)


def _print_after_rollback(scored: list[Any], rolled: AliasEvent, bad: int) -> None:
    """Which version scored the step's events after the rollback (output topic)."""
    at_ms = dt.datetime.fromisoformat(rolled.at).timestamp() * 1000
    after = [r.value for r in scored if r.value["scored_at"] >= at_ms]
    by_version = Counter(v["model"]["version"] for v in after)
    late = [v["scored_at"] for v in after if v["model"]["version"] == bad]
    tail = (
        f"the last v{bad} prediction was scored {(max(late) - at_ms) / 1000:.2f} s after it "
        "(workers swap within a second)"
        if late
        else f"none by v{bad}"
    )
    console.print(
        "after the rollback: "
        + ", ".join(f"v{v} scored {n:,}" for v, n in sorted(by_version.items()))
        + f"; {tail}; production is v{rolled.to_version} again"
    )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [jsonio.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _id_of(record: Any) -> Any:
    value = record.value
    return value.get("id") if isinstance(value, dict) else None


def _source_of(record: Any) -> tuple[int, int] | None:
    try:
        h = record.headers
        return int(h[wire.H_SOURCE_PARTITION]), int(h[wire.H_SOURCE_OFFSET])
    except (KeyError, ValueError):
        return None


def _alive_check(
    workers: subprocess.Popen[bytes], monitor: subprocess.Popen[bytes], cfg: Config
) -> Callable[[], None]:
    """A check that raises :class:`DemoWaitFailed` once the workers' supervisor or the monitor
    has exited."""

    def check() -> None:
        code = workers.poll()
        if code is not None:
            raise DemoWaitFailed(
                f"the workers' supervisor exited (code {code}) before the demo's events were "
                f"scored; see {cfg.worker.log_dir / 'supervisor.log'} and worker-*.log there"
            )
        code = monitor.poll()
        if code is not None:
            raise DemoWaitFailed(
                f"the monitor exited (code {code}) before it rolled the bad version back; see "
                f"{cfg.worker.log_dir / 'monitor.log'}"
            )

    return check


class _RunReader:
    """Reads one topic from the end offsets it had when the demo run started."""

    def __init__(self, cfg: Config, topic: str) -> None:
        from kafka import KafkaConsumer
        from kafka.structs import TopicPartition

        from streamscore.kafka_admin import client_kwargs, high_watermarks

        self.cfg = cfg
        self.topic = topic
        starts = high_watermarks(cfg.kafka, topic)
        self.consumer = KafkaConsumer(**client_kwargs(cfg.kafka), enable_auto_commit=False)
        tps = [TopicPartition(topic, p) for p in sorted(starts)]
        self.consumer.assign(tps)
        for tp in tps:
            self.consumer.seek(tp, starts[tp.partition])

    def wait(
        self,
        wanted: Callable[[Any], bool],
        count: int,
        what: str,
        timeout_s: float,
        check: Callable[[], None],
    ) -> list[Any]:
        """Records for which ``wanted`` holds, once ``count`` distinct ones arrived (by id or
        source offset); a duplicate is kept, so it shows. Raises when ``timeout_s`` passes."""
        from producer.results import to_result

        found: list[Any] = []
        distinct: set[Any] = set()
        deadline = time.monotonic() + timeout_s
        with console.status(f"waiting for {what} on {self.topic}"):
            while len(distinct) < count:
                if time.monotonic() > deadline:
                    raise DemoWaitFailed(
                        f"waited {timeout_s:g} s for {what} on {self.topic}: {len(distinct):,} "
                        f"of {count:,} arrived ([demo] wait_timeout_ms); see the workers' logs "
                        f"in {self.cfg.worker.log_dir}"
                    )
                check()
                for records in self.consumer.poll(timeout_ms=200).values():
                    for record in records:
                        result = to_result(record)
                        if wanted(result):
                            found.append(result)
                            distinct.add(_id_of(result) or _source_of(result))
        found.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        return found

    def close(self) -> None:
        self.consumer.close()


def _print_models(store: Any, alias: str) -> None:
    table = Table(title=f"model store: {store.name}")
    for column in ("version", "created", "estimator", "roc_auc", "accuracy", "aliases"):
        table.add_column(column)
    aliases = store.aliases()
    for manifest in store.versions():
        tags = ", ".join(sorted(a for a, v in aliases.items() if v == manifest.version))
        table.add_row(
            str(manifest.version),
            manifest.created_at[:19],
            manifest.estimator.split("(")[0].rsplit(".", 1)[-1],
            f"{manifest.metrics.get('roc_auc', float('nan')):.4f}",
            f"{manifest.metrics.get('accuracy', float('nan')):.4f}",
            tags,
        )
    console.print(table)


def _print_results(
    outputs: list[Any], dead: list[Any], labels: dict[str, Any], total: int, run: str
) -> None:
    table = Table(title="a few predictions")
    for column in ("id", "prediction", "P(benign)", "model", "known label"):
        table.add_column(column)
    for r in outputs[:5]:
        v = r.value
        base = str(v["id"]).removeprefix(f"{run}-").rsplit("-r", 1)[0]
        table.add_row(
            str(v["id"]),
            str(v["prediction"]),
            f"{v['probabilities'].get('1', 0):.3f}",
            f"v{v['model']['version']}",
            str(labels.get(base)),
        )
    console.print(table)
    stages = Counter(r.headers.get(wire.H_STAGE, "?") for r in dead)
    outcome = Table(title="outcomes")
    outcome.add_column("outcome")
    outcome.add_column("events", justify="right")
    distinct = {r.value["id"] for r in outputs}
    outcome.add_row("scored", f"{len(distinct):,}")
    if len(outputs) > len(distinct):
        outcome.add_row(
            "… of them scored twice (at-least-once)", f"{len(outputs) - len(distinct):,}"
        )
    for stage, n in sorted(stages.items()):
        outcome.add_row(f"dead letter ({stage})", str(n))
    outcome.add_row("total published", f"{total:,}")
    console.print(outcome)
    if outputs:
        stamps = [r.value["scored_at"] for r in outputs]
        span = max((max(stamps) - min(stamps)) / 1000, 1e-3)
        console.print(
            f"throughput, 2 workers: {len(outputs) / span:,.0f} events/s (far below the "
            f"benchmark's: {len(outputs):,} events, scored as fast as one publisher sends "
            f"them on this shared machine; `python -m bench` measures a 200,000-event backlog)"
        )
    correct = 0
    known = 0
    for r in outputs:
        v = r.value
        label = labels.get(str(v["id"]).removeprefix(f"{run}-").rsplit("-r", 1)[0])
        if label is not None:
            known += 1
            correct += int(v["prediction"] == label)
    if known:
        console.print(f"accuracy on the held-back rows: {correct / known:.4f} ({known:,} events)")


def _print_swap(outputs: list[Any], promoted_at: float, new_version: int) -> None:
    by_version = Counter(r.value["model"]["version"] for r in outputs)
    table = Table(title="mid-stream swap")
    table.add_column("version")
    table.add_column("events scored", justify="right")
    for version, n in sorted(by_version.items()):
        table.add_row(f"v{version}", f"{n:,}")
    console.print(table)
    firsts: dict[str, float] = {}
    for r in outputs:
        v = r.value
        worker = r.headers.get(wire.H_SOURCE_PARTITION, "?")
        if v["model"]["version"] == new_version:
            firsts.setdefault(worker, v["scored_at"] / 1000)
    if firsts:
        lag = max(firsts.values()) - promoted_at
        console.print(
            f"promoted v{new_version}; every partition's first v{new_version} prediction came "
            f"within {max(lag, 0):.2f}s"
        )
    ids = [r.value["id"] for r in outputs]
    twice = len(ids) - len(set(ids))
    console.print(
        f"every streamed event scored: {len(set(ids)):,} ids; scored twice: {twice:,} "
        f"(at-least-once: a rebalance or a restart may repeat a batch)"
    )


@click.command("demo")
@config_option
@pass_state
def demo(state: Any) -> None:
    """Run the end-to-end demo on the embedded broker."""
    try:
        run_demo(state.config, resolve_config_path(state.config_path))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except StreamscoreError:
        raise
