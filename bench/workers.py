"""streamscore's worker, measured as it runs in production: ``python -m worker run --index I
--config FILE`` subprocesses (the same command the supervisor starts), one consumer group.

* :func:`throughput`: a pre-published backlog; events/s from the outputs' ``scored_at``.
* :func:`latency`: one worker, events published at a fixed rate; event Kafka timestamp →
  prediction Kafka timestamp.
* :func:`hot_swap`: two workers under steady traffic; promote a new version; time to the first
  output of the new version from each worker (``model`` field of the outputs).
* Peak RSS (``VmHWM``) of every worker process, read just before it is stopped.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench import kafkautil
from bench.data import Events, TrainedModel, fresh_store
from bench.kafkautil import Names, OutputCollector, Pacer
from bench.proc import Child, CpuMeter, cpu_seconds, percentiles, say, warmup_rate
from streamscore.wire import H_SOURCE_PARTITION
from tests.tomlwrite import dumps_toml

REPO = Path(__file__).resolve().parent.parent

_OWNS = re.compile(r"^(\S+ \S+) INFO \S+: worker \S+ owns (.*)$")
_PARTITION = re.compile(r"\[(\d+)\]")


@dataclass
class Setup:
    bootstrap: str
    work: Path
    python: str = sys.executable
    join_timeout_s: float = 60.0
    worker_timeout_s: float = 300.0
    broker_pid: int | None = None
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the workers


def write_config(
    setup: Setup,
    names: Names,
    *,
    model_root: Path,
    model_name: str,
    transport: str = "kafka-python",
    delivery: str = "at-least-once",
    worker: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """A config file for this measurement's workers (``worker``: more ``[worker]`` keys);
    returns (file, log dir)."""
    folder = setup.work / names.run
    log_dir = folder / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "kafka": kafkautil.kafka_section(setup.bootstrap, names, transport=transport),
        "broker": {"run_dir": str(folder / "broker")},
        "model_store": {"root": str(model_root), "model_name": model_name},
        "training": {"data_path": str(setup.work / "data" / "train.csv")},
        "demo": {"events_path": str(setup.work / "data" / "events.jsonl")},
        "worker": {"log_dir": str(log_dir), "delivery": delivery, **(worker or {})},
        "http": {"enabled": False, "port": 0},
        "trainer": {"jobs_dir": str(folder / "jobs"), "port": 0},
    }
    path = folder / "config.toml"
    path.write_text(dumps_toml(tables), encoding="utf-8")
    return path, log_dir


class Workers:
    """``processes`` worker subprocesses; always stopped (TERM, then KILL) on exit."""

    def __init__(self, setup: Setup, config: Path, log_dir: Path, processes: int) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        env = dict(os.environ, PYTHONUNBUFFERED="1", **setup.env)
        try:
            for index in range(processes):
                cmd = [setup.python, "-m", "worker", "run", "--index", str(index)]
                cmd += ["--config", str(config)]
                self.children.append(
                    Child(cmd, log_path=log_dir / f"stdout-{index}.log", env=env, cwd=REPO)
                )
        except BaseException:
            self.stop()
            raise

    def check_alive(self) -> None:
        for index, child in enumerate(self.children):
            if not child.alive():
                raise RuntimeError(
                    f"worker {index} exited with {child.proc.returncode}:\n{child.tail()}"
                )

    def wait_for_log(self, text: str, timeout_s: float) -> None:
        """Until every worker's log has a line containing ``text``."""
        deadline = time.monotonic() + timeout_s
        waiting = set(range(len(self.children)))
        while waiting:
            self.check_alive()
            for index in list(waiting):
                with contextlib.suppress(OSError):
                    if text in (self.log_dir / f"worker-{index}.log").read_text(errors="replace"):
                        waiting.discard(index)
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"workers {sorted(waiting)} never logged {text!r}")
            time.sleep(0.05)

    def peak_rss_kib(self) -> list[int | None]:
        return [child.vm_hwm_kib() for child in self.children]

    def stop(self) -> None:
        for child in self.children:  # all at once: they leave the group in parallel
            if child.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            child.stop(grace_s=10.0)

    def assignments(self) -> list[list[tuple[float, set[int]]]]:
        """Per worker: every ``owns`` log line as (epoch s, partitions)."""
        out: list[list[tuple[float, set[int]]]] = []
        for index in range(len(self.children)):
            events: list[tuple[float, set[int]]] = []
            path = self.log_dir / f"worker-{index}.log"
            with contextlib.suppress(OSError):
                for line in path.read_text(errors="replace").splitlines():
                    match = _OWNS.match(line)
                    if match:
                        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                        parts = {int(p) for p in _PARTITION.findall(match.group(2))}
                        events.append((at, parts))
            out.append(events)
        return out


@contextlib.contextmanager
def running(setup: Setup, config: Path, log_dir: Path, processes: int) -> Iterator[Workers]:
    workers = Workers(setup, config, log_dir, processes)
    try:
        yield workers
    finally:
        workers.stop()


@contextlib.contextmanager
def fresh_topics(setup: Setup, label: str) -> Iterator[Names]:
    names = Names.fresh(label)
    kafkautil.create_topics(setup.bootstrap, names)
    try:
        yield names
    finally:
        kafkautil.delete_topics(setup.bootstrap, names)


# --------------------------------------------------------------------------- throughput


@dataclass
class Backlog:
    keys: list[bytes]
    values: list[bytes]

    @property
    def size(self) -> int:
        return len(self.values)


def throughput(
    setup: Setup,
    models: dict[str, TrainedModel],
    key: str,
    backlog: Backlog,
    *,
    processes: int,
    transport: str = "kafka-python",
    delivery: str = "at-least-once",
    label: str = "worker",
    shadow_fraction: float | None = None,
    drift: bool = False,
) -> dict[str, Any]:
    """The workers start with no model to serve (they wait, not consuming); the model is then
    promoted, so every member joins the group at once and the backlog is shared from the start.

    ``shadow_fraction``: a copy of the model (version 2, alias ``candidate``) shadows that share
    of the ids (``[worker] shadow_alias``), with no budget limit, so the row measures the whole
    cost of scoring them twice.

    ``drift``: the version carries its reference profile, so every worker counts drift
    (``monitor.worker_drift``); without it the version has none and no worker counts. Either
    way each worker's log must say so, or the run is refused.
    """
    from model_store import ModelStore
    from model_store.release import promote_and_announce

    n = backlog.size
    shadowed = shadow_fraction is not None
    root, name = fresh_store(
        models, [key, key] if shadowed else [key], production=False, label=key, profile=drift
    )
    extra: dict[str, Any] = {}
    if shadowed:
        extra = {
            "shadow_alias": "candidate",
            "shadow_fraction": shadow_fraction,
            "shadow_budget_ms": 600_000,
        }
    with fresh_topics(setup, label) as names:
        stored: dict[str, Any] = {}
        published_s = kafkautil.publish(
            setup.bootstrap, names.input, backlog.values, backlog.keys, stats=stored
        )
        config, log_dir = write_config(
            setup,
            names,
            model_root=root,
            model_name=name,
            transport=transport,
            delivery=delivery,
            worker=extra,
        )
        collector = OutputCollector(setup.bootstrap, names.output, isolation=_isolation(delivery))
        try:
            with running(setup, config, log_dir, processes) as workers:
                workers.wait_for_log("no servable model", setup.join_timeout_s)
                promote_and_announce(
                    ModelStore(root, name),
                    kafkautil.kafka_config(setup.bootstrap, names),
                    1,
                    "production",
                    reason="bench",
                )
                started = time.monotonic()
                if not collector.wait_for(1, setup.join_timeout_s, check=workers.check_alive):
                    raise TimeoutError(f"no output within {setup.join_timeout_s:.0f} s")
                first_output_s = time.monotonic() - started
                cpu = CpuMeter(workers=[c.pid for c in workers.children], broker=[setup.broker_pid])
                cpu.start()
                complete = collector.wait_for(
                    n, setup.worker_timeout_s, check=workers.check_alive, stall_s=20.0
                )
                cores = cpu.stop()
                rss = workers.peak_rss_kib()
                assignments = workers.assignments()
                _check_drift(workers, drift)
        finally:
            collector.close()
        diagnosis: dict[str, Any] = {}
        if not complete:
            collector, diagnosis = _reread(setup, names, collector, n)
    stamps = [orjson.loads(v)["scored_at"] for v in collector.values]
    scored_at = sorted(stamps)
    checkpoints: list[tuple[float, int]] = []
    for count, ms in enumerate(scored_at, start=1):
        if checkpoints and checkpoints[-1][0] == ms / 1000:
            checkpoints[-1] = (ms / 1000, count)
        else:
            checkpoints.append((ms / 1000, count))
    # A member that joins late makes the group rebalance (every member pauses); the rate is
    # taken after the last assignment, once every worker consumes.
    last_assignment = max((a[-1][0] for a in assignments if a), default=None)
    rate = warmup_rate(checkpoints, n, not_before=last_assignment)
    # With several members the window also ends when the first of them has scored its last
    # event (its partitions are drained while another still works on the rest: that tail
    # measures the backlog's partition balance, not the group's throughput).
    first_done = _first_member_done(assignments, collector.partitions, stamps)
    if processes > 1 and first_done is not None:
        whole = rate
        rate = warmup_rate(
            [c for c in checkpoints if c[0] <= first_done], n, not_before=last_assignment
        )
        rate["rate_to_last_output"] = whole["rate"]
        rate["tail_excluded_s"] = round(checkpoints[-1][0] - first_done, 3)
    moves = sum(len(a) for a in assignments)
    window_start = checkpoints[0][0] if checkpoints else None
    return {
        **rate,
        "complete": complete,
        "outputs": collector.count,
        "backlog": n,
        "stored_backlog": stored,
        "publish_s": round(published_s, 2),
        "startup_to_first_output_s": round(first_output_s, 2),
        "peak_rss_kib": rss,
        "cpu_cores": cores,
        "incomplete": diagnosis,
        "assignment_events": moves,
        "rebalanced": any(len(a) > 1 for a in assignments),
        "last_assignment_after_first_output_s": (
            round(last_assignment - window_start, 3)
            if last_assignment is not None and window_start is not None
            else None
        ),
    }


#: What a worker logs when it counts drift for the version it serves (worker.service).
DRIFT_ON = "counting drift against its reference profile"


def _check_drift(workers: Workers, expected: bool) -> None:
    """Every worker counted drift (``expected``) or none did: a row's label must be true."""
    wrong = []
    for index in range(len(workers.children)):
        path = workers.log_dir / f"worker-{index}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        if (DRIFT_ON in text) != expected:
            wrong.append(index)
    if wrong:
        state = "did not count" if expected else "counted"
        raise RuntimeError(
            f"workers {wrong} {state} drift (their log {'lacks' if expected else 'has'} "
            f"{DRIFT_ON!r}): check the version's profile.json in the bench's store"
        )


def _first_member_done(
    assignments: list[list[tuple[float, set[int]]]], partitions: list[int], stamps: list[int]
) -> float | None:
    """When the first member scored its last event (epoch s): the latest ``scored_at`` among
    the outputs of the partitions it owned at the end. Outputs go to their event's partition
    number (same partition counts), so an output's partition names its input partition."""
    if len(partitions) != len(stamps) or not all(assignments):
        return None
    last_by_partition: dict[int, int] = {}
    for partition, ms in zip(partitions, stamps, strict=True):
        if ms > last_by_partition.get(partition, -1):
            last_by_partition[partition] = ms
    done = [
        max(last_by_partition.get(p, -1) for p in owned[-1][1]) / 1000
        for owned in assignments
        if owned[-1][1]
    ]
    return min(done) if done else None


def _reread(
    setup: Setup, names: Names, collector: OutputCollector, n: int
) -> tuple[OutputCollector, dict[str, Any]]:
    """The outputs stopped arriving before ``n``: compare with the output topic's high
    watermarks and, if the outputs are all there, read them again with a fresh reader."""
    from streamscore.kafka_admin import high_watermarks

    diagnosis: dict[str, Any] = {
        "read": collector.count,
        "read_per_partition": collector.per_partition(),
        "reader_errors": collector.errors,
    }
    try:
        ends = high_watermarks(kafkautil.kafka_config(setup.bootstrap, names), names.output)
    except Exception as exc:  # noqa: BLE001 - diagnosis only
        diagnosis["high_watermarks"] = f"{type(exc).__name__}: {exc}"
        return collector, diagnosis
    diagnosis["high_watermarks"] = ends
    say(f"  outputs stopped at {collector.count:,} of {n:,}; high watermarks {ends}")
    if sum(ends.values()) < n:
        return collector, diagnosis
    again = OutputCollector(setup.bootstrap, names.output)
    try:
        again.wait_for(n, 120, stall_s=20.0)
    finally:
        again.close()
    diagnosis["reread"] = again.count
    say(f"  read again: {again.count:,} outputs")
    return (again if again.count > collector.count else collector), diagnosis


# --------------------------------------------------------------------------- latency


def latency(
    setup: Setup,
    model: TrainedModel,
    events: Events,
    *,
    max_rate: float,
    fractions: tuple[float, ...],
    seconds: float,
    warmup_events: int = 2000,
    settle_s: float = 1.0,
    transport: str = "kafka-python",
    delivery: str = "at-least-once",
) -> dict[str, Any]:
    """For each fraction, one worker on fresh topics scores events published at
    ``fraction × max_rate`` for ``seconds``.

    Each phase starts from the same state (fresh topics, a fresh worker, warmed up): the
    embedded broker's cost per request grows with the record batches stored in a partition
    (measured by :mod:`bench.broker_probe`), and a paced phase stores thousands of small
    batches, so a phase run on the topics of the one before measured the broker's history,
    not the worker.
    """
    phases: dict[str, Any] = {}
    peaks: list[list[int | None]] = []
    for fraction in fractions:
        rate = fraction * max_rate
        phase, phase_rss = _latency_phase(
            setup,
            model,
            events,
            rate=rate,
            label=f"{fraction:.0%}",
            seconds=seconds,
            warmup_events=warmup_events,
            settle_s=settle_s,
            transport=transport,
            delivery=delivery,
        )
        phases[f"{fraction:.2f}"] = phase
        peaks.append(phase_rss)
    # per worker index, the highest peak of any phase
    rss = [
        max((v for v in column if v is not None), default=None)
        for column in zip(*peaks, strict=True)
    ]
    return {"phases": phases, "max_rate": max_rate, "seconds": seconds, "peak_rss_kib": rss}


@contextlib.contextmanager
def warmed_worker(
    setup: Setup,
    model: TrainedModel,
    events: Events,
    *,
    label: str,
    warmup_events: int,
    transport: str = "kafka-python",
    delivery: str = "at-least-once",
) -> Iterator[tuple[Names, Workers, OutputCollector]]:
    """One worker on fresh topics that has scored ``warmup_events`` (joined, model loaded and
    warm); its topics, process and output reader are gone afterwards."""
    with fresh_topics(setup, label) as names:
        config, log_dir = write_config(
            setup,
            names,
            model_root=model.store_root,
            model_name=model.model_name,
            transport=transport,
            delivery=delivery,
        )
        collector = OutputCollector(setup.bootstrap, names.output, isolation=_isolation(delivery))
        try:
            with running(setup, config, log_dir, 1) as workers:
                keys, values = events.backlog(warmup_events, prefix="warm")
                kafkautil.publish(setup.bootstrap, names.input, values, keys)
                if not collector.wait_for(
                    warmup_events, setup.join_timeout_s, check=workers.check_alive
                ):
                    raise TimeoutError("the worker did not score the warm-up events")
                yield names, workers, collector
        finally:
            collector.close()


def _latency_phase(
    setup: Setup,
    model: TrainedModel,
    events: Events,
    *,
    rate: float,
    label: str,
    seconds: float,
    warmup_events: int,
    settle_s: float,
    transport: str,
    delivery: str,
) -> tuple[dict[str, Any], list[int | None]]:
    with warmed_worker(
        setup,
        model,
        events,
        label="latency",
        warmup_events=warmup_events,
        transport=transport,
        delivery=delivery,
    ) as (names, workers, collector):
        prefix = "lat"
        say(f"  latency: {rate:,.0f} events/s ({label}) for {seconds:g} s")
        expected = collector.count + int(rate * seconds)
        cpu = CpuMeter(workers=[c.pid for c in workers.children], broker=[setup.broker_pid])
        cpu.start()

        def tick() -> None:
            collector.poll(0)

        def make(i: int) -> tuple[bytes, bytes]:
            return events.event(i, prefix)

        stamps = kafkautil.paced_publish(
            setup.bootstrap, names.input, rate=rate, seconds=seconds, make=make, tick=tick
        )
        collector.wait_for(expected, 30, check=workers.check_alive)
        cores = cpu.stop()
        phase = _latencies(collector, prefix, stamps, rate, settle_s) | {"cpu_cores": cores}
        rss = workers.peak_rss_kib()
    return phase, rss


def _isolation(delivery: str) -> str:
    """How the bench reads outputs: as a downstream exactly-once reader when that is the mode
    (a prediction counts once its transaction committed)."""
    return "read_committed" if delivery == "exactly-once" else "read_uncommitted"


def idle_cpu(
    setup: Setup,
    model: TrainedModel,
    events: Events,
    *,
    seconds: float,
    transport: str = "kafka-python",
) -> dict[str, Any]:
    """CPU of one ready worker with no traffic: it scored a few events (so it is joined, its
    model loaded and warm), then nothing arrives for ``seconds``."""
    with warmed_worker(
        setup, model, events, label="idle", warmup_events=100, transport=transport
    ) as (_names, workers, _collector):
        time.sleep(2.0)  # the last batch's commit and metrics settle
        pids = [c.pid for c in workers.children]
        started = time.monotonic()
        before = [cpu_seconds(p) for p in pids]
        time.sleep(seconds)
        after = [cpu_seconds(p) for p in pids]
        wall = time.monotonic() - started
        workers.check_alive()
    used = sum((a or 0.0) - (b or 0.0) for a, b in zip(after, before, strict=True))
    return {"seconds": round(wall, 1), "cpu_percent": round(100 * used / wall, 2)}


def _latencies(
    collector: OutputCollector, prefix: str, stamps: list[int], rate: float, settle_s: float
) -> dict[str, Any]:
    tag = f'"id":"{prefix}-'.encode()
    skip = int(rate * settle_s)  # the first second of the phase is its warm-up
    lat: list[float] = []
    seen = 0
    for value, ts in zip(collector.values, collector.timestamps, strict=True):
        if tag not in value:
            continue
        index = int(orjson.loads(value)["id"].rsplit("-", 1)[1])
        seen += 1
        if index >= skip:
            lat.append(ts - stamps[index])
    p50, p95, p99 = percentiles(lat)
    return {
        "rate": rate,
        "published": len(stamps),
        "scored": seen,
        "measured": len(lat),
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "max_ms": max(lat) if lat else None,
    }


# --------------------------------------------------------------------------- hot swap


def hot_swap(
    setup: Setup,
    models: dict[str, TrainedModel],
    events: Events,
    *,
    rate: float,
    processes: int = 2,
    first: str = "lr",
    second: str = "hgb",
    steady_s: float = 2.0,
    after_s: float = 15.0,
) -> dict[str, Any]:
    """Workers serve ``first`` v1 under steady traffic; promote ``second`` v2 (as
    ``streamscore models promote`` does: move the alias, announce on the control topic)."""
    from model_store import ModelStore
    from model_store.release import promote_and_announce

    root, name = fresh_store(models, [first, second], production=True, label="swap")
    store = ModelStore(root, name)
    with fresh_topics(setup, "swap") as names:
        config, log_dir = write_config(setup, names, model_root=root, model_name=name)
        kafka = kafkautil.kafka_config(setup.bootstrap, names)
        collector = OutputCollector(setup.bootstrap, names.output, headers=True)
        pacer = Pacer(setup.bootstrap, names.input, rate=rate, make=lambda i: events.event(i, "sw"))
        promoted_ms: int | None = None
        owners: dict[int, set[int]] = {}
        try:
            with running(setup, config, log_dir, processes) as workers:
                ready_at: float | None = None
                promoted_until = 0.0
                next_check = 0.0
                deadline = time.monotonic() + setup.join_timeout_s + steady_s + after_s + 30
                while time.monotonic() < deadline:
                    pacer.step()
                    collector.poll(0)
                    time.sleep(0.002)
                    now = time.monotonic()
                    if now < next_check:
                        continue
                    next_check = now + 0.1  # the checks below read logs or scan outputs
                    if promoted_ms is None:
                        if ready_at is None and _all_serving(workers, collector):
                            ready_at = now
                            say(f"  hot swap: {processes} workers serve, promote in {steady_s:g} s")
                        if ready_at is not None and now - ready_at >= steady_s:
                            workers.check_alive()
                            owners = _owners(workers)
                            promoted_ms = time.time_ns() // 1_000_000
                            promote_and_announce(
                                store, kafka, 2, "production", reason="bench hot swap"
                            )
                            promoted_until = time.monotonic() + after_s
                    elif now > promoted_until or _swapped_everywhere(collector, owners):
                        break
                if promoted_ms is None:
                    raise TimeoutError("the workers never all served traffic")
                owners_after = _owners(workers)
                rss = workers.peak_rss_kib()
        finally:
            pacer.close()
            collector.close()
    per_worker = _first_new_outputs(collector, owners, promoted_ms)
    values = [v for v in per_worker.values() if v is not None]
    return {
        "rate": rate,
        "processes": processes,
        "from": first,
        "to": second,
        "per_worker_ms": per_worker,
        "every_worker_ms": max(values) if len(values) == len(per_worker) else None,
        "first_worker_ms": min(values) if values else None,
        "owners": {str(k): sorted(v) for k, v in owners.items()},
        "rebalanced_during_swap": owners_after != owners,
        "peak_rss_kib": rss,
    }


def _owners(workers: Workers) -> dict[int, set[int]]:
    return {i: (a[-1][1] if a else set()) for i, a in enumerate(workers.assignments())}


def _all_serving(workers: Workers, collector: OutputCollector) -> bool:
    """Every worker owns partitions and outputs came from each of the 4 partitions."""
    owners = _owners(workers)
    if not all(owners.values()):
        return False
    sources = {_source_partition(h) for h in collector.headers[-2000:]}
    return all(parts <= sources for parts in owners.values())


def _source_partition(headers: Any) -> int | None:
    for key, value in headers or ():
        if key == H_SOURCE_PARTITION:
            return int(value)
    return None


def _model_version(value: bytes) -> int:
    return int(orjson.loads(value)["model"]["version"])


def _swapped_everywhere(collector: OutputCollector, owners: dict[int, set[int]]) -> bool:
    done = _first_new_outputs(collector, owners, 0)
    return all(v is not None for v in done.values())


def _first_new_outputs(
    collector: OutputCollector, owners: dict[int, set[int]], promoted_ms: int
) -> dict[int, float | None]:
    """Per worker: ms from the promotion to its first output (Kafka timestamp) of v2."""
    first: dict[int, float | None] = {i: None for i in owners}
    owner_of = {p: i for i, parts in owners.items() for p in parts}
    for value, ts, headers in zip(
        collector.values, collector.timestamps, collector.headers, strict=True
    ):
        if b'"version":2' not in value or _model_version(value) != 2:
            continue
        worker = owner_of.get(_source_partition(headers) or -1)
        if worker is None:
            continue
        delay = ts - promoted_ms
        if first[worker] is None or delay < first[worker]:  # type: ignore[operator]
            first[worker] = delay
    return first


__all__ = ["Backlog", "Setup", "hot_swap", "latency", "throughput"]
