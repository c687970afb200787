"""``python -m bench``: run the measurements, print one table, write bench/results/latest.*.

Every measurement gets fresh uuid topics and a fresh consumer group, starts from a backlog
published beforehand (throughput) or from a warmed-up worker (latency, hot swap), and is
bounded in time; every subprocess is stopped in a ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import kafkautil, machine, report
from bench.proc import median, run_child, say, warmup_rate

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUIX_VENV = HERE / ".venv-quix"
RESULTS = HERE / "results"

#: The client ceilings: pipelined passthroughs (the ceiling) and their synchronous variants.
CEILINGS = (
    "ceiling-kafka-python",
    "ceiling-kafka-python-sync",
    "ceiling-confluent",
    "ceiling-confluent-sync",
)
THROUGHPUT_ROWS = (
    *CEILINGS,
    "baseline",
    "quix",
    "worker-1",
    "worker-2",
    "worker-1-confluent",
    "worker-1-dataframe",
    "worker-1-eos",
    "worker-1-confluent-eos",
    "worker-1-shadow-100",
    "worker-1-shadow-10",
    "worker-1-confluent-shadow-100",
    "worker-1-drift",
    "worker-1-confluent-drift",
)
#: Rows whose version carries its reference profile, so the worker counts drift; each is
#: measured next to its row without (same model, same transport, no profile).
DRIFT_ROWS = {"worker-1-drift": "worker-1", "worker-1-confluent-drift": "worker-1-confluent"}
#: Rows with a shadow: the share of ids it scores.
SHADOW_ROWS = {
    "worker-1-shadow-100": 1.0,
    "worker-1-shadow-10": 0.1,
    "worker-1-confluent-shadow-100": 1.0,
}
#: Rows and sections in ``[worker] delivery = "exactly-once"`` (refused on Tansu: skipped there).
EXACTLY_ONCE = ("worker-1-eos", "worker-1-confluent-eos", "latency-eos")
#: --only names → rows / sections
ONLY = {
    "ceiling": CEILINGS,
    "baseline": ("baseline",),
    "quix": ("quix",),
    "worker": ("worker-1",),
    "worker2": ("worker-2",),
    "worker-confluent": ("worker-1-confluent",),
    "worker-dataframe": ("worker-1-dataframe",),
    "eos": EXACTLY_ONCE,
    "latency": ("latency",),
    "latency-confluent": ("latency-confluent",),
    "hotswap": ("hotswap",),
    "idle": ("idle",),
    "monitor": ("monitor",),
    "shadow": tuple(SHADOW_ROWS),
    "drift": tuple(r for pair in DRIFT_ROWS.items() for r in pair),
}
#: ``python -m bench.monitor`` sizes: pending predictions (the disk target is for 1,000,000),
#: labels joined in-process, labels end to end on the broker; (full run, --quick).
MONITOR_SIZES = {False: (1_000_000, 200_000, 100_000), True: (1_000_000, 100_000, 20_000)}
#: Left out of --quick unless named with --only.
NOT_QUICK = ("shadow", "drift")
#: Length of one idle-CPU measurement.
IDLE_S = 20.0
#: Throughput runs ignore the events done in the first WARMUP_S seconds (or first 10 %).
WARMUP_S = 2.0
MODEL_FREE = CEILINGS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="streamscore throughput/latency benchmark, side by side with baselines",
    )
    p.add_argument("--events", type=int, default=None, help="backlog size (default 200000)")
    p.add_argument("--runs", type=int, default=None, help="runs per figure, median (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke check: 20000 events, 1 run")
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of: {', '.join(ONLY)} (default: all)",
    )
    p.add_argument("--models", default="lr,hgb", help="lr, hgb or both (default lr,hgb)")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="time budget of one client-side throughput run (baseline, peer, ceiling); "
        "slow rows are measured over this window instead of the whole backlog (default 20)",
    )
    p.add_argument(
        "--latency-seconds", type=float, default=None, help="length of one latency phase (8)"
    )
    p.add_argument(
        "--omp-threads",
        type=int,
        default=None,
        help="set OMP_NUM_THREADS for every scorer process, and [worker] model_threads for "
        "the workers (default: unset for the baseline and the peer, as written; the workers "
        "use their config default, model_threads = 1)",
    )
    p.add_argument("--quix-python", default=None, help="interpreter that has quixstreams")
    p.add_argument(
        "--setup-quix",
        action="store_true",
        help=f"create {QUIX_VENV.relative_to(REPO)} with quixstreams and exit",
    )
    p.add_argument(
        "--broker",
        choices=("tansu", "kafka"),
        default="tansu",
        help="broker to start when KAFKA_BOOTSTRAP_SERVERS is unset: embedded Tansu (default) "
        "or Apache Kafka 4.4.0 (needs java 17+ and mvn)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary work folder")
    args = p.parse_args(argv)
    if args.quick:
        args.events = args.events or 20_000
        args.runs = args.runs or 1
        args.max_seconds = args.max_seconds or 6.0
        args.latency_seconds = args.latency_seconds or 4.0
    args.events = args.events or 200_000
    args.runs = args.runs or 3
    args.max_seconds = args.max_seconds or 20.0
    args.latency_seconds = args.latency_seconds or 8.0
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in ONLY]
    if unknown:
        p.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(ONLY)}")
    default = [w for w in ONLY if not (args.quick and w in NOT_QUICK)]
    args.sections = {s for w in (wanted or default) for s in ONLY[w]}
    args.model_keys = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.model_keys or any(m not in ("lr", "hgb") for m in args.model_keys):
        p.error("--models: lr, hgb or lr,hgb")
    return args


# --------------------------------------------------------------------------- the peer's venv


def setup_quix() -> int:
    base = getattr(sys, "_base_executable", sys.executable)
    say(f"creating {QUIX_VENV} with {base}")
    subprocess.run([base, "-m", "venv", str(QUIX_VENV)], check=True)
    pip = [str(QUIX_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "-r", str(HERE / "quix-requirements.txt")], check=True)
    say("done: python -m bench will use it for the Quix Streams row")
    return 0


def find_quix_python(explicit: str | None) -> tuple[str | None, str]:
    for candidate in (explicit, os.environ.get("BENCH_QUIX_PYTHON")):
        if candidate:
            return candidate, ""
    if importlib.util.find_spec("quixstreams") is not None:
        return sys.executable, ""
    side = QUIX_VENV / "bin" / "python"
    if side.exists():
        return str(side), ""
    return None, (
        "quixstreams is not installed: `python -m bench --setup-quix` creates "
        f"{QUIX_VENV.relative_to(REPO)} (it needs confluent-kafka<2.13, the project pins 2.16)"
    )


# --------------------------------------------------------------------------- orchestration


class Bench:
    def __init__(
        self, args: argparse.Namespace, bootstrap: str, work: Path, broker_pid: int | None
    ) -> None:
        from bench.data import Events
        from bench.workers import Backlog, Setup

        self.args = args
        self.bootstrap = bootstrap
        self.work = work
        self.events = Events()
        keys, values = self.events.backlog(args.events)
        self.backlog = Backlog(keys, values)
        self.setup = Setup(
            bootstrap=bootstrap,
            work=work,
            join_timeout_s=60.0,
            worker_timeout_s=60.0 + args.events / 1000,
            broker_pid=broker_pid,
            env=self.child_env(),
        )
        self.models: dict[str, Any] = {}
        self.quix_python, self.quix_skip = find_quix_python(args.quix_python)
        self.eos_skip = _exactly_once_skip(bootstrap)
        self.results: dict[str, Any] = {
            "throughput": {},
            "latency": {},
            "latency-confluent": {},
            "latency-eos": {},
            "hotswap": {},
            "idle": {},
            "monitor": {},
            "errors": [],
            "skipped": {},
        }

    # ---------------------------------------------------------------- helpers

    def child_env(self) -> dict[str, str]:
        """Extra environment of every scorer process (baseline, peer, workers)."""
        if self.args.omp_threads:
            threads = str(self.args.omp_threads)
            return {"OMP_NUM_THREADS": threads, "STREAMSCORE__WORKER__MODEL_THREADS": threads}
        return {}

    def _record_error(self, what: str, exc: BaseException) -> None:
        say(f"  FAILED {what}: {type(exc).__name__}: {exc}")
        self.results["errors"].append(
            {"what": what, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        )

    def _tp(self, row: str, model: str) -> dict[str, Any]:
        entry: dict[str, Any] = (
            self.results["throughput"].setdefault(row, {}).setdefault(model, {"runs": []})
        )
        return entry

    def _client_run(
        self, kind: str, model_key: str | None, python: str, script: list[str]
    ) -> dict[str, Any]:
        names = kafkautil.Names.fresh(kind)
        kafkautil.create_topics(self.bootstrap, names)
        try:
            stored: dict[str, Any] = {}
            kafkautil.publish(
                self.bootstrap, names.input, self.backlog.values, self.backlog.keys, stats=stored
            )
            spec: dict[str, Any] = {
                "kind": kind,
                "bootstrap": self.bootstrap,
                "input": names.input,
                "output": names.output,
                "group": names.group,
                "events": self.args.events,
                "max_seconds": self.args.max_seconds,
                "warmup_s": WARMUP_S,
                "join_timeout_s": 60.0,
            }
            if model_key is not None:
                m = self.models[model_key]
                spec |= {
                    "artifact": str(m.artifact),
                    "features": m.features,
                    "model_name": m.model_name,
                }
            result = self._run_spec(
                spec,
                self.work / names.run,
                [python, *script],
                timeout_s=60.0 + self.args.max_seconds * 2 + 60,
                env=self.child_env(),
            )
        finally:
            kafkautil.delete_topics(self.bootstrap, names)
        rate = warmup_rate([tuple(c) for c in result["checkpoints"]], self.args.events, WARMUP_S)
        return {
            **rate,
            "stored_backlog": stored,
            "peak_rss_kib": [result.get("rss_kib")],
            **{k: v for k, v in result.items() if k not in ("checkpoints", "rss_kib")},
        }

    @staticmethod
    def _run_spec(
        spec: dict[str, Any],
        folder: Path,
        command: list[str],
        *,
        timeout_s: float,
        env: dict[str, str],
    ) -> dict[str, Any]:
        """Run ``command SPEC.json RESULT.json`` in ``folder``; the result, or RuntimeError."""
        folder.mkdir(parents=True, exist_ok=True)
        spec_path, result_path = folder / "spec.json", folder / "result.json"
        spec_path.write_text(json.dumps(spec))
        code, tail = run_child(
            [*command, str(spec_path), str(result_path)],
            log_path=folder / "output.log",
            timeout_s=timeout_s,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **env),
        )
        if code != 0 or not result_path.exists():
            raise RuntimeError(f"{spec['kind']} exited with {code}:\n{tail}")
        result: dict[str, Any] = json.loads(result_path.read_text())
        return result

    # ---------------------------------------------------------------- measurements

    def throughput_round(self, run: int) -> None:
        from bench import workers

        a = self.args
        rows = [r for r in THROUGHPUT_ROWS if r in a.sections]
        for row in rows:
            keys = [None] if row in MODEL_FREE else a.model_keys
            for key in keys:
                label = f"{row}{'' if key is None else ' / ' + key} (run {run + 1}/{a.runs})"
                if row == "quix" and self.quix_python is None:
                    self.results["skipped"]["quix"] = self.quix_skip
                    continue
                if row in EXACTLY_ONCE and self.eos_skip:
                    self.results["skipped"][row] = self.eos_skip
                    continue
                say(f"{label} ...")
                started = time.monotonic()
                try:
                    if row in CEILINGS:
                        result = self._client_run(
                            row, None, sys.executable, ["-m", "bench.runners"]
                        )
                    elif row == "baseline":
                        result = self._client_run(row, key, sys.executable, ["-m", "bench.runners"])
                    elif row == "quix":
                        assert self.quix_python is not None
                        result = self._client_run(
                            "quix", key, self.quix_python, [str(HERE / "quix_peer.py")]
                        )
                    else:
                        assert key is not None
                        processes = 2 if row == "worker-2" else 1
                        transport = "confluent-kafka" if "confluent" in row else "kafka-python"
                        delivery = "exactly-once" if row in EXACTLY_ONCE else "at-least-once"
                        result = workers.throughput(
                            self.setup,
                            self.models,
                            f"{key}-df" if row == "worker-1-dataframe" else key,
                            self.backlog,
                            processes=processes,
                            transport=transport,
                            delivery=delivery,
                            label=row,
                            shadow_fraction=SHADOW_ROWS.get(row),
                            drift=row in DRIFT_ROWS,
                        )
                except Exception as exc:  # noqa: BLE001 - one failed row must not end the bench
                    self._record_error(label, exc)
                    continue
                self._tp(row, key or "any")["runs"].append(result)
                rate = result.get("rate")
                say(
                    f"  {rate:,.0f} events/s over {result.get('measured_events', 0):,} events "
                    f"({time.monotonic() - started:.0f} s)"
                    if rate
                    else f"  no rate: {result}"
                )
                self.save()

    def model_alone(self) -> None:
        """Peak RSS of each model scoring one batch with no Kafka and no worker around it."""
        sample = self.work / "sample.jsonl"
        sample.write_bytes(b"\n".join(self.backlog.values[:1000]))
        for key in self.args.model_keys:
            m = self.models[key]
            spec = {
                "kind": "model-alone",
                "artifact": str(m.artifact),
                "features": m.features,
                "sample": str(sample),
            }
            try:
                result = self._run_spec(
                    spec,
                    self.work / f"model-alone-{key}",
                    [sys.executable, "-m", "bench.runners"],
                    timeout_s=120.0,
                    env={},
                )
            except RuntimeError as exc:
                self._record_error(f"model-alone / {key}", exc)
                continue
            self.results.setdefault("model_alone", {})[key] = {
                "peak_rss_kib": result.get("rss_kib"),
                "artifact_bytes": m.artifact.stat().st_size,
            }
            say(f"model alone / {key}: peak RSS {result.get('rss_kib', 0) / 1024:,.0f} MiB")

    def max_rate(self, key: str, row: str = "worker-1") -> float | None:
        runs = self.results["throughput"].get(row, {}).get(key, {}).get("runs", [])
        return median([r.get("rate") for r in runs])

    def latency(self, transport: str = "kafka-python", delivery: str = "at-least-once") -> None:
        from bench import workers

        a = self.args
        fractions = (0.25, 0.5, 0.75)
        if delivery == "exactly-once":
            if self.eos_skip:
                self.results["skipped"]["latency-eos"] = self.eos_skip
                return
            row, section = "worker-1-eos", "latency-eos"
        elif transport == "kafka-python":
            row, section = "worker-1", "latency"
        else:
            row, section = "worker-1-confluent", "latency-confluent"
        for key in a.model_keys:
            top = self.max_rate(key, row)
            if top is None:
                say(f"{section} / {key}: measuring the 1-process maximum first ...")
                try:
                    result = workers.throughput(
                        self.setup,
                        self.models,
                        key,
                        self.backlog,
                        processes=1,
                        label=row,
                        transport=transport,
                        delivery=delivery,
                    )
                    self._tp(row, key)["runs"].append(result)
                    top = result.get("rate")
                except Exception as exc:  # noqa: BLE001
                    self._record_error(f"{section} / {key}: 1-process maximum", exc)
                    continue
            if not top:
                continue
            entry = self.results[section].setdefault(key, {"runs": [], "max_rate": top})
            for run in range(a.runs):
                say(f"{section} / {key} (run {run + 1}/{a.runs}), 1 process, max {top:,.0f}/s ...")
                try:
                    entry["runs"].append(
                        workers.latency(
                            self.setup,
                            self.models[key],
                            self.events,
                            max_rate=top,
                            fractions=fractions,
                            seconds=a.latency_seconds,
                            transport=transport,
                            delivery=delivery,
                        )
                    )
                except Exception as exc:  # noqa: BLE001
                    self._record_error(f"{section} / {key} run {run + 1}", exc)
                self.save()

    def idle(self) -> None:
        """CPU of one ready worker with no traffic, per transport."""
        from bench import workers

        key = self.args.model_keys[0]
        for transport in ("kafka-python", "confluent-kafka"):
            entry = self.results["idle"].setdefault(transport, {"runs": []})
            for run in range(self.args.runs):
                say(f"idle / {transport} (run {run + 1}/{self.args.runs}), {IDLE_S:g} s ...")
                try:
                    result = workers.idle_cpu(
                        self.setup,
                        self.models[key],
                        self.events,
                        seconds=IDLE_S,
                        transport=transport,
                    )
                except Exception as exc:  # noqa: BLE001
                    self._record_error(f"idle / {transport} run {run + 1}", exc)
                    continue
                entry["runs"].append(result)
                say(f"  {result['cpu_percent']:.2f} % of a core")
                self.save()

    def hotswap(self) -> None:
        from bench import workers

        a = self.args
        if "lr" not in self.models:
            self.results["skipped"]["hotswap"] = "needs the lr model (--models lr[,hgb])"
            return
        pairs = [("lr", "lr")] + ([("lr", "hgb")] if "hgb" in self.models else [])
        rate = 0.25 * (self.max_rate("lr") or 4000.0)
        for run in range(a.runs):
            for first, second in pairs:
                entry = self.results["hotswap"].setdefault(f"{first}->{second}", {"runs": []})
                say(
                    f"hot swap {first} v1 -> {second} v2 (run {run + 1}/{a.runs}), 2 processes, "
                    f"{rate:,.0f} events/s ..."
                )
                try:
                    result = workers.hot_swap(
                        self.setup, self.models, self.events, rate=rate, first=first, second=second
                    )
                except Exception as exc:  # noqa: BLE001
                    self._record_error(f"hot swap {first}->{second} run {run + 1}", exc)
                    continue
                entry["runs"].append(result)
                say(
                    f"  every worker {result['every_worker_ms']} ms "
                    f"(per worker {result['per_worker_ms']})"
                )
                self.save()

    def monitor(self) -> None:
        """``python -m bench.monitor`` in a process of its own (its RSS is the monitor's): labels
        joined per second in-process and end to end on this broker, disk for the pending
        predictions, peak RSS."""
        predictions, labels, kafka = MONITOR_SIZES[bool(self.args.quick)]
        entry = self.results["monitor"].setdefault("join", {"runs": []})
        for run in range(self.args.runs):
            folder = self.work / f"monitor-{run}"
            folder.mkdir(parents=True, exist_ok=True)
            out = folder / "result.json"
            say(
                f"monitor (run {run + 1}/{self.args.runs}): {predictions:,} pending predictions, "
                f"{labels:,} labels in-process, {kafka:,} end to end ..."
            )
            cmd = [
                sys.executable,
                "-m",
                "bench.monitor",
                "--predictions",
                str(predictions),
                "--labels",
                str(labels),
                "--kafka",
                str(kafka),
                "--bootstrap",
                self.bootstrap,
                "--dir",
                str(folder),
                "--json",
                str(out),
            ]
            code, tail = run_child(cmd, log_path=folder / "monitor.log", timeout_s=900.0)
            if not out.exists():
                self._record_error(
                    f"monitor run {run + 1}", RuntimeError(f"exit {code}; log tail: {tail}")
                )
                continue
            result = json.loads(out.read_text())
            entry["runs"].append(result)
            say(
                f"  {result['labels_per_s']:,.0f} labels/s in-process, "
                f"{result['kafka_labels_per_s']:,.0f} end to end; {result['disk_mb']:.0f} MB for "
                f"{predictions:,} pending; peak RSS {result['kafka_peak_rss_mib']:.0f} MiB"
            )
            self.save()

    def save(self) -> None:
        self.results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        report.write(self.results, self.args.out, final=False)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    # SIGTERM and SIGINT unwind through the ``finally`` blocks: every worker and client
    # subprocess and the broker are stopped. (A SIGINT ignored from the start, as in a
    # shell's background job, stays ignored.)
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _interrupt)
    args = parse_args(argv)
    if args.setup_quix:
        return setup_quix()
    from bench.data import train_models

    work = Path(tempfile.mkdtemp(prefix="streamscore-bench-"))
    started = time.monotonic()
    say(
        f"streamscore bench: {args.events:,} events, {args.runs} run(s), models "
        f"{','.join(args.model_keys)}, sections {','.join(sorted(args.sections))}; work {work}"
    )
    try:
        with kafkautil.broker(work / "broker", args.broker) as (bootstrap, broker_text, broker_pid):
            say(f"broker: {broker_text} at {bootstrap}")
            bench = Bench(args, bootstrap, work, broker_pid)
            r = bench.results
            r["machine"] = machine.describe(REPO)
            if bench.quix_python:
                r["machine"]["versions"]["quixstreams (peer venv)"] = _quix_version(
                    bench.quix_python
                )
            r["broker"] = broker_text
            r["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            r["settings"] = report.settings(args)
            say("training the models (training.run.train on the demo data) ...")
            bench.models = train_models(work, args.model_keys)
            r["models"] = {
                k: {"title": m.title, "estimator": m.estimator, "metrics": m.metrics}
                for k, m in bench.models.items()
            }
            if "worker-1-dataframe" in args.sections:
                from bench.data import dataframe_variants

                bench.models |= dataframe_variants(work, bench.models)
            bench.model_alone()
            for run in range(args.runs):
                bench.throughput_round(run)
            if "latency" in args.sections:
                bench.latency()
            if "latency-confluent" in args.sections:
                bench.latency("confluent-kafka")
            if "latency-eos" in args.sections:
                bench.latency(delivery="exactly-once")
            if "idle" in args.sections:
                bench.idle()
            if "hotswap" in args.sections:
                bench.hotswap()
            if "monitor" in args.sections:
                bench.monitor()
            r["duration_s"] = round(time.monotonic() - started, 1)
            r["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            text = report.write(r, args.out, final=True)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if args.keep_work:
            say(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    say(f"wrote {args.out / 'latest.md'} and latest.json in {time.monotonic() - started:.0f} s")
    return 1 if r["errors"] else 0


def _exactly_once_skip(bootstrap: str) -> str:
    """Why the exactly-once rows cannot run on this broker ("" when they can)."""
    from streamscore.kafka_admin import is_tansu

    names = kafkautil.Names.fresh("probe")
    if is_tansu(kafkautil.kafka_config(bootstrap, names)):
        return (
            'the embedded Tansu broker refuses [worker] delivery = "exactly-once" (its '
            "read_committed readers see aborted transactions): run `python -m bench --broker kafka`"
        )
    return ""


def _quix_version(python: str) -> str:
    with contextlib.suppress(Exception):
        out = subprocess.run(
            [
                python,
                "-c",
                "import importlib.metadata as m;"
                "print(m.version('quixstreams'), m.version('confluent-kafka'))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        return f"{out[0]} (confluent-kafka {out[1]})"
    return "unknown"


__all__ = ["main"]
