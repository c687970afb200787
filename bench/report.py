"""One Markdown table side by side with ratios, plus ``latest.json`` with every run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.kafkautil import (
    BACKLOG_BATCH_RECORDS,
    HEARTBEAT_INTERVAL_MS,
    PARTITIONS,
    SESSION_TIMEOUT_MS,
)
from bench.proc import median

TITLES = {
    "ceiling-kafka-python": "client ceiling: kafka-python passthrough, pipelined (no parse, "
    "no model; commit after acks)",
    "ceiling-kafka-python-sync": "… kafka-python passthrough, synchronous (flush and commit "
    "per poll)",
    "ceiling-confluent": "client ceiling: confluent-kafka passthrough, pipelined",
    "ceiling-confluent-sync": "… confluent-kafka passthrough, synchronous",
    "baseline": "baseline: per-message worker, kafka-python",
    "quix": "peer: Quix Streams, `predict` per record in `apply`",
    "worker-1": "**streamscore worker, 1 process**",
    "worker-2": "**streamscore worker, 2 processes**",
    "worker-1-confluent": 'streamscore worker, 1 process, `transport = "confluent-kafka"`',
    "worker-1-dataframe": "streamscore worker, 1 process, the model fitted on a DataFrame "
    "(DataFrame input, pandas loaded)",
    "worker-1-eos": 'streamscore worker, 1 process, `delivery = "exactly-once"` '
    "(outputs read as read_committed)",
    "worker-1-confluent-eos": "streamscore worker, 1 process, confluent-kafka, "
    '`delivery = "exactly-once"`',
    "worker-1-shadow-100": "streamscore worker, 1 process, a shadow (a copy of the model) "
    "scoring 100 % of the ids",
    "worker-1-shadow-10": "streamscore worker, 1 process, a shadow scoring 10 % of the ids",
    "worker-1-confluent-shadow-100": "streamscore worker, 1 process, confluent-kafka, a shadow "
    "scoring 100 % of the ids",
    "worker-1-drift": "streamscore worker, 1 process, counting drift (the version has its "
    "reference profile)",
    "worker-1-confluent-drift": "streamscore worker, 1 process, confluent-kafka, counting drift",
}
#: Drift counting's rows and the row each is compared with (same model, no profile).
DRIFT_PAIRS = {"worker-1-drift": "worker-1", "worker-1-confluent-drift": "worker-1-confluent"}
#: Issue 16: drift counting costs at most this share of the worker's throughput.
DRIFT_BUDGET = 0.05
RSS_ROWS = (
    "baseline",
    "quix",
    "worker-1",
    "worker-2",
    "worker-1-confluent",
    "worker-1-dataframe",
    "worker-1-eos",
)
#: Each client's ceiling: the fastest of its passthroughs (pipelined or synchronous).
CEILING_ROWS = {
    "kafka-python": ("ceiling-kafka-python", "ceiling-kafka-python-sync"),
    "confluent-kafka": ("ceiling-confluent", "ceiling-confluent-sync"),
}
MODEL_KEYS = ("lr", "hgb")
MODEL_TITLES = {"lr": "logistic regression", "hgb": "HistGradientBoosting"}


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "events": args.events,
        "runs": args.runs,
        "partitions": PARTITIONS,
        "client_max_seconds": args.max_seconds,
        "latency_seconds": args.latency_seconds,
        "models": args.model_keys,
        "omp_num_threads": args.omp_threads,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        "worker": _worker_defaults(),
    }


def _worker_defaults() -> str:
    """The worker settings the measured workers run with (the shipped defaults)."""
    from streamscore.config import WorkerConfig

    w = WorkerConfig()
    shown = ", ".join(
        f"{name} {getattr(w, name)}"
        for name in (
            "max_batch_records",
            "max_wait_ms",
            "batch_linger_ms",
            "linger_ms",
            "producer_batch_bytes",
            "reload_poll_ms",
            "fetch_max_bytes",
            "max_partition_fetch_bytes",
            "model_threads",
        )
    )
    return f"config defaults: {shown}, acks all, http off"


# --------------------------------------------------------------------------- summaries


def _rates(results: dict[str, Any], row: str, key: str) -> list[float]:
    entry = results.get("throughput", {}).get(row, {})
    entry = entry.get("any") or entry.get(key) or {}
    return [r["rate"] for r in entry.get("runs", []) if r.get("rate")]


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"throughput": {}, "latency": {}, "hotswap": {}, "rss_mib": {}}
    for row in TITLES:
        for key in MODEL_KEYS:
            rates = _rates(results, row, key)
            if rates:
                out["throughput"].setdefault(row, {})[key] = {
                    "median": median(rates),
                    "min": min(rates),
                    "max": max(rates),
                    "runs": len(rates),
                }
    for row in RSS_ROWS:
        for key in MODEL_KEYS:
            runs = results.get("throughput", {}).get(row, {}).get(key, {}).get("runs", [])
            peaks = [
                max(v for v in r["peak_rss_kib"] if v)
                for r in runs
                if any(r.get("peak_rss_kib") or [])
            ]
            peak = median(peaks)
            if peak is not None:
                out["rss_mib"].setdefault(row, {})[key] = peak / 1024
    for section in ("latency", "latency-confluent", "latency-eos"):
        for key, entry in results.get(section, {}).items():
            phases: dict[str, Any] = {}
            for run in entry.get("runs", []):
                for fraction, ph in run["phases"].items():
                    slot = phases.setdefault(
                        fraction, {"rate": ph["rate"], "p50": [], "p95": [], "p99": []}
                    )
                    for q in ("p50", "p95", "p99"):
                        slot[q].append(ph[f"{q}_ms"])
            out.setdefault(section, {})[key] = {
                f: {"rate": v["rate"], **{q: median(v[q]) for q in ("p50", "p95", "p99")}}
                for f, v in phases.items()
            }
    for transport, entry in results.get("idle", {}).items():
        out.setdefault("idle", {})[transport] = median(
            [r.get("cpu_percent") for r in entry.get("runs", [])]
        )
    monitor_runs = results.get("monitor", {}).get("join", {}).get("runs", [])
    if monitor_runs:
        out["monitor"] = {
            key: median([r.get(key) for r in monitor_runs])
            for key in (
                "labels_per_s",
                "labels_per_cpu_s",
                "kafka_labels_per_s",
                "disk_mb",
                "bytes_per_prediction",
                "predictions",
                "kafka_peak_rss_mib",
                "peak_rss_mib",
            )
        }
        out["monitor"]["runs"] = len(monitor_runs)
    for pair, entry in results.get("hotswap", {}).items():
        swaps = entry.get("runs", [])
        if not swaps:
            continue
        out["hotswap"][pair] = {
            "every_worker_ms": median([s.get("every_worker_ms") for s in swaps]),
            "first_worker_ms": median([s.get("first_worker_ms") for s in swaps]),
            "max_every_worker_ms": max(
                (s["every_worker_ms"] for s in swaps if s.get("every_worker_ms") is not None),
                default=None,
            ),
            "rate": swaps[0]["rate"],
            "runs": len(swaps),
        }
    return out


# --------------------------------------------------------------------------- rendering


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return ""
    r = value / base
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


def _pct(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return ""
    return f"{100 * value / base:.0f} %"


def client_of(row: str) -> str:
    """The Kafka client a throughput row runs on (Quix Streams runs on confluent-kafka)."""
    return "confluent-kafka" if "confluent" in row or row == "quix" else "kafka-python"


def ceilings(tp: dict[str, Any], key: str) -> dict[str, float | None]:
    """Each client's ceiling for ``key``: the fastest median of its passthrough rows."""
    out: dict[str, float | None] = {}
    for client, rows in CEILING_ROWS.items():
        medians = [tp.get(r, {}).get(key, {}).get("median") for r in rows]
        out[client] = max((m for m in medians if m), default=None)
    return out


def _spread(entry: dict[str, Any]) -> str:
    """``median (min–max)`` over runs, the median alone for one run."""
    v = entry.get("median")
    if v is None or entry.get("runs", 1) < 2:
        return _n(v)
    return f"{_n(v)} ({_n(entry.get('min'))}–{_n(entry.get('max'))})"


def table(results: dict[str, Any], summary: dict[str, Any]) -> str:
    keys = [k for k in MODEL_KEYS if k in results.get("models", {})] or ["lr"]
    tp = summary["throughput"]
    base = {k: tp.get("baseline", {}).get(k, {}).get("median") for k in keys}
    ceiling = {k: ceilings(tp, k) for k in keys}

    header = ["measurement"]
    for k in keys:
        header += [MODEL_TITLES[k], "× baseline", "of its client's ceiling"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]

    def section(title: str) -> None:
        lines.append(f"| **{title}** |" + " |" * (len(header) - 1))

    def row(title: str, cells: list[str]) -> None:
        lines.append("| " + " | ".join([title, *cells]) + " |")

    if tp or results.get("skipped"):
        section("throughput, events/s (median of runs (min–max), warm-up excluded)")
    for name, title in TITLES.items():
        if name not in tp:
            skipped = results.get("skipped", {}).get(name)
            if skipped:
                row(title, ["skipped"] + [""] * (len(header) - 2))
            continue
        cells: list[str] = []
        for k in keys:
            entry = tp[name].get(k, {})
            v = entry.get("median")
            own = ceiling[k][client_of(name)]
            if name.startswith("ceiling"):
                cells += [_spread(entry), "", _pct(v, own)]
            else:
                cells += [_spread(entry), _ratio(v, base[k]), _pct(v, own)]
        row(title, cells)

    drift = [
        (with_, without) for with_, without in DRIFT_PAIRS.items() if with_ in tp and without in tp
    ]
    if drift:
        section(
            "drift counting's cost: events/s with / without (medians); with ÷ without, of the "
            "medians and (median) of the runs in pairs; throughput lost, target "
            f"≤ {100 * DRIFT_BUDGET:.0f} %"
        )
        for with_, without in drift:
            cells = []
            for k in keys:
                on = tp[with_].get(k, {}).get("median")
                off = tp[without].get(k, {}).get("median")
                if not on or not off:
                    cells += ["–", "", ""]
                    continue
                ons, offs = _rates(results, with_, k), _rates(results, without, k)
                paired = (
                    median([a / b for a, b in zip(ons, offs, strict=True)])
                    if len(ons) == len(offs) > 1
                    else None
                )
                ratio = f"{on / off:.3f}×" + ("" if paired is None else f" ({paired:.3f}×)")
                lost = 1 - on / off
                verdict = "within" if lost <= DRIFT_BUDGET else "over"
                cells += [
                    f"{_n(on)} / {_n(off)}",
                    ratio,
                    f"{100 * lost:+.1f} % ({verdict} the {100 * DRIFT_BUDGET:.0f} %)",
                ]
            row(f'`transport = "{client_of(with_)}"`', cells)

    for name, client in (
        ("latency", ""),
        ("latency-confluent", ", confluent-kafka"),
        ("latency-eos", ', `delivery = "exactly-once"` (read_committed)'),
    ):
        lat = summary.get(name) or {}
        if not lat:
            continue
        section(
            f"end-to-end latency, 1 process{client}, p50 / p95 / p99 ms "
            "(event → prediction, Kafka timestamps)"
        )
        fractions = sorted({f for v in lat.values() for f in v})
        for f in fractions:
            cells = []
            rates = []
            for k in keys:
                ph = lat.get(k, {}).get(f)
                if ph is None:
                    cells += ["–", "", ""]
                    continue
                rates.append(f"{ph['rate']:,.0f}/s")
                cells += [f"{ph['p50']:.0f} / {ph['p95']:.0f} / {ph['p99']:.0f}", "", ""]
            row(f"at {float(f):.0%} of its 1-process maximum ({', '.join(rates)})", cells)

    idle = summary.get("idle") or {}
    if idle:
        section("idle CPU of one ready worker, no traffic, % of a core (median of runs)")
        for transport, pct in idle.items():
            cell = "–" if pct is None else f"{pct:.2f} %"
            row(f'`transport = "{transport}"`', [cell, "", ""] + ["", "", ""] * (len(keys) - 1))

    swaps = summary["hotswap"]
    if swaps:
        section("model hot swap, 2 processes: promote → first v2 output on every worker, ms")
        for pair, hs in swaps.items():
            first, second = pair.split("->")
            title = (
                f"LR v1 → LR v2 (retrained, same class) under {hs['rate']:,.0f} events/s"
                if first == second
                else f"LR v1 → HGB v2 (a new class: its first load imports sklearn.ensemble) under "
                f"{hs['rate']:,.0f} events/s"
            )
            cell = f"{_n(hs['every_worker_ms'])} (first worker {_n(hs['first_worker_ms'])})"
            row(title, [cell, "", ""] + ["", "", ""] * (len(keys) - 1))

    mon = summary.get("monitor") or {}
    if mon:
        section(
            "`streamscore monitor`: label join, one process (median of runs; "
            "second column: the issue 16 target)"
        )
        pad = [""] * (len(header) - 3)
        row(
            "labels joined per second, in-process (sqlite join state, batches of 5,000)",
            [_n(mon["labels_per_s"]), "≥ 20,000", *pad],
        )
        row(
            "labels joined per second end to end on the broker (the service, consuming the "
            "predictions too)",
            [_n(mon["kafka_labels_per_s"]), "≥ 20,000", *pad],
        )
        row(
            f"disk for {_n(mon['predictions'])} pending predictions, MB "
            f"({_n(mon['bytes_per_prediction'])} B each)",
            [f"{mon['disk_mb']:,.0f}", "≤ 300", *pad],
        )
        row(
            "peak RSS of that process (VmHWM: the in-process join, then the service), MiB",
            [_n(mon["kafka_peak_rss_mib"]), "", *pad],
        )

    rss = summary["rss_mib"]
    alone = results.get("model_alone", {})
    if rss or alone:
        section("peak RSS of a worker process (VmHWM), MiB")
        if alone:
            peaks, sizes = [], []
            for k in keys:
                a = alone.get(k, {})
                size = a.get("artifact_bytes")
                peaks += [_mib(a.get("peak_rss_kib")), "", ""]
                sizes += ["–" if size is None else f"{size / 1024:,.0f} KiB", "", ""]
            row("the model alone: python, its libraries, the artifact, 1,000 events scored", peaks)
            row("… its artifact file (model.joblib)", sizes)
        for name, label in (
            ("worker-1", "streamscore worker, 1 process"),
            ("worker-2", "streamscore worker, 2 processes (the larger)"),
            ("worker-1-confluent", "streamscore worker, 1 process, confluent-kafka"),
            ("worker-1-dataframe", "streamscore worker, 1 process, DataFrame model (pandas)"),
            ("baseline", "baseline process (for comparison)"),
            ("quix", "Quix Streams process (for comparison)"),
        ):
            if name in rss:
                cells = []
                for k in keys:
                    v = rss[name].get(k)
                    cells += ["–" if v is None else f"{v:,.0f}", "", ""]
                row(label, cells)
        if alone and "worker-1" in rss:
            cells = []
            for k in keys:
                base, worker = alone.get(k, {}).get("peak_rss_kib"), rss["worker-1"].get(k)
                over = None if base is None or worker is None else worker - base / 1024
                cells += ["–" if over is None else f"+{over:,.0f}", "", ""]
            row("worker, 1 process, over the model alone (the worker's own cost)", cells)
    return "\n".join(lines)


def _mib(kib: float | None) -> str:
    return "–" if kib is None else f"{kib / 1024:,.0f}"


def header_text(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    s = results.get("settings", {})
    v = m.get("versions", {})
    versions = ", ".join(f"{k} {val}" for k, val in v.items())
    models = "; ".join(
        f"{info['title']}: `{info['estimator']}`" for info in results.get("models", {}).values()
    )
    lines = [
        f"Machine: {m.get('cores')} cores, {m.get('cpu_model')}, {m.get('mem_gib')} GiB, "
        f"Linux {m.get('kernel')}; broker: {results.get('broker', '?')}.",
        f"Versions: {versions}; streamscore {m.get('git_commit')}.",
        f"Settings: {s.get('events', 0):,} events (~800-byte JSON, breast-cancer rows), "
        f"{s.get('partitions')} partitions, {s.get('runs')} run(s) per figure (median), "
        f"OMP_NUM_THREADS {s.get('omp_num_threads') or 'unset'}, "
        f"fresh topics and group per run; client-side runs capped at "
        f"{s.get('client_max_seconds'):g} s; group session {s.get('session_timeout_ms')} ms; "
        f"worker {s.get('worker')}; latency phases {s.get('latency_seconds'):g} s.",
        f"Models: {models}.",
        f"Broker conditions: {stored_batches(results)}.",
        f"Run: {results.get('started_at', '?')} UTC, {results.get('duration_s', '?')} s.",
    ]
    return "\n".join(lines)


def stored_batches(results: dict[str, Any]) -> str:
    """How the backlogs were stored: what shapes the embedded broker's speed."""
    per_batch = [
        r.get("stored_backlog", {}).get("records_per_batch")
        for row in results.get("throughput", {}).values()
        for entry in row.values()
        for r in entry.get("runs", [])
    ]
    per_batch = [v for v in per_batch if v]
    low, high = (min(per_batch), max(per_batch)) if per_batch else (0, 0)
    spread = f"{low:,.0f}" if low == high else f"{low:,.0f}–{high:,.0f}"
    shape = (
        f"backlogs stored as {spread} records per batch (mean per run; published with "
        f"batch.num.messages {BACKLOG_BATCH_RECORDS}, linger 50 ms)"
        if per_batch
        else "records per stored batch not measured"
    )
    return (
        f"{shape}; every run on fresh topics and a fresh group (the previous run's topics "
        f"deleted), one broker process for the whole benchmark"
    )


def details(results: dict[str, Any]) -> str:
    """Per-run values, so the spread is visible."""
    lines = ["Per-run throughput (events/s):", ""]
    for name in TITLES:
        for key, entry in results.get("throughput", {}).get(name, {}).items():
            rates = [f"{r['rate']:,.0f}" if r.get("rate") else "–" for r in entry.get("runs", [])]
            flags = []
            if any(r.get("rebalanced") for r in entry.get("runs", [])):
                flags.append("the group rebalanced in some run (rate taken after it)")
            if any(r.get("complete") is False for r in entry.get("runs", [])):
                flags.append("some run did not finish the backlog in time")
            measured = [r.get("measured_events", 0) for r in entry.get("runs", [])]
            flags.append(_cpu_text(entry.get("runs", [])))
            flags = [f for f in flags if f]
            tail = f"; {'; '.join(flags)}" if flags else ""
            lines.append(
                f"- {name} / {key}: {', '.join(rates)} (events measured per run: "
                f"{', '.join(f'{m:,}' for m in measured)}){tail}"
            )
    for transport, entry in results.get("idle", {}).items():
        values = ", ".join(f"{r['cpu_percent']:.2f} %" for r in entry.get("runs", []))
        lines.append(f"- idle CPU, {transport}, per run: {values}")
    for r in results.get("monitor", {}).get("join", {}).get("runs", []):
        lines.append(
            f"- monitor: {r['labels_per_s']:,.0f} labels/s in-process "
            f"({r['labels_per_cpu_s']:,.0f} per CPU second, load average "
            f"{r['load_average']:.1f}), {r['kafka_labels_per_s']:,.0f} end to end, "
            f"{r['disk_mb']:.0f} MB, peak RSS {r['kafka_peak_rss_mib']:.0f} MiB"
        )
    for pair, entry in results.get("hotswap", {}).items():
        runs = entry.get("runs", [])
        values = ", ".join(
            "/".join(_n(v) for v in r["per_worker_ms"].values()) + " ms" for r in runs
        )
        lines.append(f"- hot swap {pair}, per worker per run: {values}")
    for err in results.get("errors", []):
        lines.append(f"- ERROR {err['what']}: {err['error']}")
    for name, why in results.get("skipped", {}).items():
        lines.append(f"- skipped {name}: {why}")
    return "\n".join(lines)


def _cpu_text(runs: list[dict[str, Any]]) -> str:
    """Median CPU use while measuring, in cores (1.0 = one core busy)."""
    parts = []
    for name, label in (("scorer", "scorer"), ("workers", "workers"), ("broker", "broker")):
        key = name
        values = []
        for r in runs:
            cores = r.get("cpu_cores")
            if isinstance(cores, dict):
                values.append(cores.get(key))
            elif name == "scorer":
                values.append(cores)
        m = median(values)
        if m is not None:
            parts.append(f"{label} {m:.2f}")
    return "CPU cores: " + ", ".join(parts) if parts else ""


def write(results: dict[str, Any], out: Path, *, final: bool) -> str:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    results["summary"] = summary
    text = "\n\n".join([header_text(results), table(results, summary), details(results)]) + "\n"
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "latest.md").write_text(("" if final else "(partial)\n\n") + text)
    return text
