"""Client-side measurements, each run in a fresh interpreter:

``python -m bench.runners SPEC.json RESULT.json`` where the spec's ``kind`` is

* ``ceiling-kafka-python`` / ``ceiling-confluent``: consume the backlog and re-produce the raw
  bytes (no parsing, no model): per poll of up to 1000 records, send all, flush (wait for the
  acknowledgements), commit synchronously. Client settings as the streamscore worker's.
* ``baseline``: the per-message worker a data scientist writes first, on kafka-python with its
  defaults: ``json.loads``, ``predict_proba`` on one row, ``json.dumps``, ``send``, auto-commit.
* ``model-alone``: no Kafka: the interpreter, the model's libraries and the artifact, scoring one
  batch of events (decode, matrix, ``predict_proba``), set up as a worker process is (pandas
  skipped, model threads 1). Its peak RSS is the floor under a worker's: what the model costs.

The result holds ``checkpoints``: ``(time, events done)`` pairs, from the first record on.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

SESSION = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 1000}


def _ceiling_kafka_python(spec: dict[str, Any]) -> dict[str, Any]:
    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(
        spec["input"],
        bootstrap_servers=spec["bootstrap"],
        group_id=spec["group"],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1000,
        fetch_max_bytes=52_428_800,
        max_partition_fetch_bytes=1_048_576,
        fetch_max_wait_ms=50,
        **SESSION,
    )
    producer = KafkaProducer(
        bootstrap_servers=spec["bootstrap"], acks="all", linger_ms=5, batch_size=262_144
    )
    out_topic = spec["output"]
    planned, budget = spec["events"], spec["warmup_s"] + spec["max_seconds"]
    checkpoints: list[tuple[float, int]] = []
    cpu0: tuple[float, float] | None = None
    done = 0
    join_deadline = time.monotonic() + spec["join_timeout_s"]
    stop_at = None
    try:
        while done < planned:
            polled = consumer.poll(timeout_ms=500, max_records=1000)
            now = time.time()
            if not polled:
                if stop_at is None and time.monotonic() > join_deadline:
                    raise TimeoutError("no records within the join timeout")
                if stop_at is not None and now > stop_at:
                    break
                continue
            if stop_at is None:
                stop_at = now + budget
                checkpoints.append((now, 0))
                cpu0 = (time.process_time(), time.monotonic())
            send = producer.send
            for records in polled.values():
                for r in records:
                    send(out_topic, value=r.value, key=r.key)
                    done += 1
            producer.flush()
            consumer.commit()
            checkpoints.append((time.time(), done))
            if time.time() > stop_at:
                break
    finally:
        producer.close(timeout=5)
        consumer.close(autocommit=False)
    return {"checkpoints": checkpoints, "cpu_cores": _cores(cpu0)}


def _ceiling_confluent(spec: dict[str, Any]) -> dict[str, Any]:
    import confluent_kafka as ck

    consumer = ck.Consumer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "group.id": spec["group"],
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 3000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 50,
        }
    )
    producer = ck.Producer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 262_144,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    consumer.subscribe([spec["input"]])
    out_topic = spec["output"]
    planned, budget = spec["events"], spec["warmup_s"] + spec["max_seconds"]
    checkpoints: list[tuple[float, int]] = []
    cpu0: tuple[float, float] | None = None
    done = 0
    join_deadline = time.monotonic() + spec["join_timeout_s"]
    stop_at = None
    try:
        while done < planned:
            messages = consumer.consume(num_messages=1000, timeout=0.5)
            messages = [m for m in messages if m.error() is None]
            now = time.time()
            if not messages:
                if stop_at is None and time.monotonic() > join_deadline:
                    raise TimeoutError("no records within the join timeout")
                if stop_at is not None and now > stop_at:
                    break
                continue
            if stop_at is None:
                stop_at = now + budget
                checkpoints.append((now, 0))
                cpu0 = (time.process_time(), time.monotonic())
            produce = producer.produce
            for m in messages:
                while True:
                    try:
                        produce(out_topic, m.value(), m.key())
                        break
                    except BufferError:
                        producer.poll(0.01)
            done += len(messages)
            producer.flush(30)
            consumer.commit(asynchronous=False)
            checkpoints.append((time.time(), done))
            if time.time() > stop_at:
                break
    finally:
        producer.flush(5)
        consumer.close()
    return {"checkpoints": checkpoints, "cpu_cores": _cores(cpu0)}


def _baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """What a data scientist writes first. Deliberately plain: the reference point."""
    import json as stdjson

    import joblib
    from kafka import KafkaConsumer, KafkaProducer

    model = joblib.load(spec["artifact"])
    features = spec["features"]
    classes = model.classes_.tolist()
    model_ref = {"name": spec["model_name"], "version": 1}

    consumer = KafkaConsumer(
        spec["input"],
        bootstrap_servers=spec["bootstrap"],
        group_id=spec["group"],
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(spec["join_timeout_s"] * 1000),
        **SESSION,
    )
    producer = KafkaProducer(bootstrap_servers=spec["bootstrap"])
    out_topic = spec["output"]
    planned, budget = spec["events"], spec["warmup_s"] + spec["max_seconds"]
    checkpoints: list[tuple[float, int]] = []
    cpu0: tuple[float, float] | None = None
    done = 0
    stop_at = None
    try:
        for message in consumer:
            if stop_at is None:
                now = time.time()
                stop_at = now + budget
                checkpoints.append((now, 0))
                cpu0 = (time.process_time(), time.monotonic())
            event = stdjson.loads(message.value)
            row = [event[name] for name in features]
            proba = model.predict_proba([row])[0]
            best = int(proba.argmax())
            prediction = {
                "id": event["id"],
                "prediction": classes[best],
                "probabilities": {str(c): float(p) for c, p in zip(classes, proba, strict=True)},
                "model": model_ref,
                "scored_at": int(time.time() * 1000),
            }
            producer.send(out_topic, key=message.key, value=stdjson.dumps(prediction).encode())
            done += 1
            if done % 50 == 0:
                now = time.time()
                checkpoints.append((now, done))
                if now > stop_at:
                    break
            if done >= planned:
                break
        producer.flush()
        checkpoints.append((time.time(), done))
    finally:
        producer.close(timeout=5)
        consumer.close()
    return {"checkpoints": checkpoints, "cpu_cores": _cores(cpu0)}


def _model_alone(spec: dict[str, Any]) -> dict[str, Any]:
    from streamscore.config import WorkerConfig
    from worker.lean import limit_model_threads, skip_pandas

    limit_model_threads(WorkerConfig().model_threads)
    skip_pandas()
    import joblib
    import numpy as np
    import orjson

    model = joblib.load(spec["artifact"])
    features = spec["features"]
    events = [orjson.loads(line) for line in Path(spec["sample"]).read_bytes().splitlines()]
    matrix = np.array([[e[name] for name in features] for e in events], dtype=np.float64)
    proba = model.predict_proba(matrix)
    return {"checkpoints": [], "rows": int(proba.shape[0])}


def _cores(start: tuple[float, float] | None) -> float | None:
    """CPU seconds of this process (all threads, librdkafka's too) per wall second."""
    if start is None:
        return None
    wall = time.monotonic() - start[1]
    return round((time.process_time() - start[0]) / wall, 2) if wall > 0 else None


KINDS = {
    "ceiling-kafka-python": _ceiling_kafka_python,
    "ceiling-confluent": _ceiling_confluent,
    "baseline": _baseline,
    "model-alone": _model_alone,
}


def _vm_hwm_kib() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    result = KINDS[spec["kind"]](spec)
    result["rss_kib"] = _vm_hwm_kib()
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
