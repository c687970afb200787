"""``python -m bench.monitor``: the monitor's join state at scale, on one process.

Measures, in a temporary folder:

1. **disk**: ``--predictions`` (default 1,000,000) pending predictions of a binary classifier
   (ids like ``evt-00000042``, two float probabilities, spread over ``--hours`` of prediction
   time) inserted in batches of ``--batch`` (5,000, the monitor's ``max_poll_records``); the
   sqlite file + WAL size after a checkpoint, in MB and bytes per prediction.
2. **labels/s**: ``--labels`` (default 200,000) labels joined in batches of ``--batch``, in
   random id order (the realistic case: labels do not come in prediction order), each batch one
   transaction with its consumer offsets, as :class:`monitor.service.MonitorService` does.
3. **peak RSS** of the process (VmHWM).

On a shared machine the wall-clock rate depends on the load: the CPU-second rate and the load
average are printed next to it.

``--kafka N`` also runs the whole service end to end on ``--bootstrap`` (fresh uuid topics; default
an embedded broker of its own on a free port): N
predictions and their N labels are published first (confluent-kafka, so the producer is not the
limit), then :class:`monitor.service.MonitorService` runs in this process until every label is
joined; the rate is labels joined per second of its run (it consumes the N predictions too).

``--json PATH`` writes the numbers too (``python -m bench --only monitor`` reads them).

Targets (issue 16): 1,000,000 pending predictions in at most 300 MB; at least 20,000 labels/s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from monitor.joinstate import JoinState, Label, Prediction, disk_bytes

HOUR_MS = 3_600_000


def _rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    predictions: int, labels: int, batch: int, hours: int, folder: Path
) -> dict[str, float]:
    state = JoinState(folder / "join.sqlite", max_predictions=predictions)
    rng = np.random.default_rng(0)
    t0 = 1_764_000_000_000 - 1_764_000_000_000 % HOUR_MS
    span = hours * HOUR_MS
    p1 = rng.random(predictions)
    started = time.perf_counter()
    for start in range(0, predictions, batch):
        stop = min(start + batch, predictions)
        rows = [
            Prediction(
                id=f"evt-{i:08d}",
                version=1,
                predicted_at_ms=t0 + i * span // predictions,
                prediction=int(p1[i] >= 0.5),
                probabilities={"0": float(1 - p1[i]), "1": float(p1[i])},
            )
            for i in range(start, stop)
        ]
        state.apply(rows, [], {("predictions", 0): stop})
    insert_s = time.perf_counter() - started
    state.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = disk_bytes(state.path)
    order = rng.permutation(predictions)[:labels]
    truth = (rng.random(labels) < 0.5).astype(int)
    started = time.perf_counter()
    cpu_started = time.process_time()
    joined = 0
    for start in range(0, labels, batch):
        chunk = [
            Label(f"evt-{int(order[j]):08d}", int(truth[j]), t0 + span)
            for j in range(start, min(start + batch, labels))
        ]
        result = state.apply([], chunk, {("labels", 0): start + len(chunk)})
        joined += result.counts["joined"]
    join_s = time.perf_counter() - started
    join_cpu_s = time.process_time() - cpu_started
    metrics = state.cumulative(1).metrics()
    state.close()
    return {
        "predictions": predictions,
        "insert_per_s": predictions / insert_s,
        "disk_mb": size / 1e6,
        "bytes_per_prediction": size / predictions,
        "labels": labels,
        "joined": joined,
        "labels_per_s": joined / join_s,
        "labels_per_cpu_s": joined / join_cpu_s,
        "load_average": os.getloadavg()[0],
        "labelled": float(metrics["labelled"] or 0),
        "peak_rss_mib": _rss_mib(),
    }


def measure_kafka(n: int, folder: Path, bootstrap: str = "") -> dict[str, float]:
    """End to end on ``bootstrap`` (fresh uuid topics), or on an embedded broker of its own."""
    from broker import EmbeddedBroker, free_port

    if bootstrap:
        return _measure_kafka(n, folder, bootstrap)
    with EmbeddedBroker(host="127.0.0.1", port=free_port(), run_dir=folder / "broker") as broker:
        return _measure_kafka(n, folder, broker.address)


def _measure_kafka(n: int, folder: Path, bootstrap: str) -> dict[str, float]:
    import threading
    import uuid

    from confluent_kafka import Producer

    from monitor.service import MonitorService
    from streamscore import jsonio
    from streamscore.config import config_from_dict
    from streamscore.kafka_admin import ensure_topics

    run = f"bench-monitor-{uuid.uuid4().hex[:8]}"
    cfg = config_from_dict(
        {
            "kafka": {
                "bootstrap_servers": bootstrap,
                "request_timeout_ms": 30000,
                **{
                    f"{t}_topic": f"{run}.{t}"
                    for t in ("input", "output", "dead_letter", "control", "labels")
                },
                "quality_topic": f"{run}.quality",
                "monitoring_topic": f"{run}.monitoring",
            },
            "model_store": {"root": str(folder / "models"), "model_name": "bench"},
            "monitor": {
                "group_id": f"{run}.monitor",
                "state_path": str(folder / "kafka-join.sqlite"),
                "port": 0,
                "evaluate_interval_ms": 200,
            },
        },
        environ={},
        base_dir=folder,
    )
    k = cfg.kafka
    ensure_topics(k)
    ensure_topics(k, [k.labels_topic])
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    now = int(time.time() * 1000)
    for i in range(n):
        key = f"evt-{i:08d}".encode()
        p1 = (i % 100) / 100
        body = {
            "id": key.decode(),
            "prediction": int(p1 >= 0.5),
            "probabilities": {"0": 1 - p1, "1": p1},
            "model": {"name": "bench", "version": 1},
            "scored_at": now,
        }
        producer.produce(k.output_topic, jsonio.dumps(body), key=key)
        producer.produce(
            k.labels_topic, jsonio.dumps({"id": key.decode(), "label": i % 2}), key=key
        )
        if i % 10_000 == 0:
            producer.flush()
    producer.flush()
    service = MonitorService(cfg)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    started = time.perf_counter()
    cpu_started = time.process_time()
    thread.start()
    joined = 0
    while time.perf_counter() - started < 600:
        joined = int(service.snapshot().get("counters", {}).get("joined", 0))
        if joined >= n:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    stop.set()
    thread.join(timeout=30)
    return {
        "kafka_labels": n,
        "kafka_joined": joined,
        "kafka_labels_per_s": joined / elapsed,
        "kafka_labels_per_cpu_s": joined / cpu,
        "kafka_peak_rss_mib": _rss_mib(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.monitor", description=__doc__)
    p.add_argument("--predictions", type=int, default=1_000_000)
    p.add_argument("--labels", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--hours", type=int, default=24)
    p.add_argument("--dir", type=Path, default=None, help="where the sqlite file goes (tmp)")
    p.add_argument("--kafka", type=int, default=0, help="also end to end with N labels")
    p.add_argument(
        "--bootstrap", default="", help="broker for --kafka (default: an embedded one of its own)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        out = measure(args.predictions, args.labels, args.batch, args.hours, Path(tmp))
        if args.kafka:
            out |= measure_kafka(args.kafka, Path(tmp), args.bootstrap)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))
    print(
        f"join state: {out['predictions']:,.0f} pending predictions in {out['disk_mb']:.1f} MB "
        f"({out['bytes_per_prediction']:.0f} B each; target <= 300 MB), inserted at "
        f"{out['insert_per_s']:,.0f}/s"
    )
    print(
        f"join: {out['joined']:,.0f} of {out['labels']:,.0f} labels at "
        f"{out['labels_per_s']:,.0f} labels/s wall, {out['labels_per_cpu_s']:,.0f} per CPU "
        f"second (target >= 20,000); peak RSS {out['peak_rss_mib']:.0f} MiB; load average "
        f"{out['load_average']:.1f} on {os.cpu_count()} CPUs"
    )
    if args.kafka:
        print(
            f"service on Kafka: {out['kafka_joined']:,.0f} of {out['kafka_labels']:,.0f} labels "
            f"joined at {out['kafka_labels_per_s']:,.0f} labels/s wall "
            f"({out['kafka_labels_per_cpu_s']:,.0f} per CPU second of this process, which also "
            f"consumed the predictions); peak RSS {out['kafka_peak_rss_mib']:.0f} MiB"
        )
    ok = out["disk_mb"] <= 300 and out["labels_per_s"] >= 20_000
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
