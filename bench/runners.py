"""Client-side measurements, each run in a fresh interpreter:

``python -m bench.runners SPEC.json RESULT.json`` where the spec's ``kind`` is

* ``ceiling-kafka-python`` / ``ceiling-confluent``: consume the backlog and re-produce the raw
  bytes (no parsing, no model) with the worker's delivery guarantee (acks=all, a batch's offsets
  committed only once each of its records is acknowledged, batches committed in order),
  pipelined: the next poll overlaps the previous batches' acknowledgements (at most
  ``PIPELINE_BATCHES`` batches of up to 1000 records unacknowledged), commits asynchronous.
  The fastest passthrough each client allows under that guarantee: the ceiling.
* ``ceiling-kafka-python-sync`` / ``ceiling-confluent-sync``: the same, synchronous: per poll
  send all, flush (wait for the acknowledgements), commit synchronously (the worker's loop with
  ``max_batches_in_flight = 1``). Client settings as the streamscore worker's.
* ``baseline``: the per-message worker a data scientist writes first, on kafka-python with its
  defaults: ``json.loads``, ``predict_proba`` on one row, ``json.dumps``, ``send``, auto-commit.
* ``model-alone``: no Kafka: the interpreter, the model's libraries and the artifact, scoring one
  batch of events (decode, matrix, ``predict_proba``), set up as a worker process is (pandas
  skipped, model threads 1). Its peak RSS is the floor under a worker's: what the model costs.

The result holds ``checkpoints``: ``(time, events done)`` pairs, from the first record on.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from bench.peak_rss import vm_hwm_kib

SESSION = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 1000}
#: Unacknowledged batches a pipelined passthrough may hold (bounded, as the worker's memory).
PIPELINE_BATCHES = 4


def _ceiling_kafka_python(spec: dict[str, Any], *, pipelined: bool = True) -> dict[str, Any]:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import OffsetAndMetadata, TopicPartition

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
        bootstrap_servers=spec["bootstrap"],
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=262_144,
    )
    #: ``(futures, next offsets)`` of each unacknowledged batch, oldest first.
    in_flight: deque[tuple[list[Any], dict[Any, Any]]] = deque()

    def settle(block: bool) -> None:
        """Commit (asynchronously) every acknowledged batch at the head, in order."""
        offsets: dict[Any, Any] = {}
        while in_flight:
            futures, next_offsets = in_flight[0]
            if block:
                for f in futures:
                    f.get(timeout=30)  # raises if the broker refused it: the run fails
            elif not all(f.is_done for f in futures):
                break
            elif not all(f.succeeded() for f in futures):
                raise RuntimeError(f"a record was not acknowledged: {futures[0].exception}")
            in_flight.popleft()
            offsets.update(next_offsets)
        if offsets:
            consumer.commit_async({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})

    out_topic = spec["output"]
    planned = spec["events"]
    run = _Clock(spec)
    checkpoints = run.checkpoints
    done = 0
    try:
        while done < planned:
            polled = consumer.poll(timeout_ms=500, max_records=1000)
            now = time.time()
            if not polled:
                if run.over_while_idle(now):
                    break
                continue
            run.start(now)
            send = producer.send
            futures = []
            next_offsets = {}
            for tp, records in polled.items():
                for r in records:
                    futures.append(send(out_topic, value=r.value, key=r.key))
                next_offsets[TopicPartition(tp.topic, tp.partition)] = records[-1].offset + 1
                done += len(records)
            if pipelined:
                in_flight.append((futures, next_offsets))
                settle(block=len(in_flight) > PIPELINE_BATCHES)
                # records count once acknowledged and committed: what left the pipeline
                acked = done - sum(len(f) for f, _ in in_flight)
                checkpoints.append((time.time(), acked))
            else:
                producer.flush()
                consumer.commit()
                checkpoints.append((time.time(), done))
            if time.time() > run.stop_at:
                break
        if pipelined:
            settle(block=True)
            consumer.commit()  # synchronous: every consumed offset, all acknowledged now
            checkpoints.append((time.time(), done))
    finally:
        producer.close(timeout=5)
        consumer.close(autocommit=False)
    return {"checkpoints": checkpoints, "cpu_cores": _cores(run.cpu0)}


def _ceiling_confluent(spec: dict[str, Any], *, pipelined: bool = True) -> dict[str, Any]:
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
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 262_144,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    consumer.subscribe([spec["input"]])
    #: ``[unacknowledged records, failures, next offsets]`` of each batch, oldest first.
    in_flight: deque[_Ticket] = deque()

    def settle(block: bool) -> None:
        """Commit (asynchronously) every acknowledged batch at the head, in order."""
        producer.poll(0)  # serve delivery reports
        offsets: dict[tuple[str, int], int] = {}
        while in_flight:
            ticket = in_flight[0]
            while block and ticket.left:
                producer.poll(0.05)
            if ticket.left:
                break
            if ticket.failed:
                raise RuntimeError(f"a record was not acknowledged: {ticket.failed[0]}")
            in_flight.popleft()
            offsets.update(ticket.offsets)
        if offsets:
            consumer.commit(
                offsets=[ck.TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=True,
            )

    out_topic = spec["output"]
    planned = spec["events"]
    run = _Clock(spec)
    checkpoints = run.checkpoints
    done = 0
    try:
        while done < planned:
            messages = consumer.consume(num_messages=1000, timeout=0.5)
            messages = [m for m in messages if m.error() is None]
            now = time.time()
            if not messages:
                if run.over_while_idle(now):
                    break
                continue
            run.start(now)
            produce = producer.produce
            ticket = _Ticket(len(messages))
            reports = {"on_delivery": ticket.report} if pipelined else {}
            for m in messages:
                while True:
                    try:
                        produce(out_topic, m.value(), m.key(), **reports)
                        break
                    except BufferError:
                        producer.poll(0.01)
                ticket.offsets[(m.topic(), m.partition())] = m.offset() + 1
            done += len(messages)
            if pipelined:
                in_flight.append(ticket)
                settle(block=len(in_flight) > PIPELINE_BATCHES)
                acked = done - sum(t.size for t in in_flight)
                checkpoints.append((time.time(), acked))
            else:
                producer.flush(30)
                consumer.commit(asynchronous=False)
                checkpoints.append((time.time(), done))
            if time.time() > run.stop_at:
                break
        if pipelined:
            settle(block=True)
            consumer.commit(asynchronous=False)
            checkpoints.append((time.time(), done))
    finally:
        producer.flush(5)
        consumer.close()
    return {"checkpoints": checkpoints, "cpu_cores": _cores(run.cpu0)}


class _Clock:
    """A passthrough's run: it starts at the first record and lasts ``warmup_s +
    max_seconds``; until then, waiting for records is bounded by ``join_timeout_s``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.budget_s = spec["warmup_s"] + spec["max_seconds"]
        self.join_deadline = time.monotonic() + spec["join_timeout_s"]
        self.stop_at: float = float("inf")  # set by the first record
        self.started = False
        self.checkpoints: list[tuple[float, int]] = []
        self.cpu0: tuple[float, float] | None = None

    def over_while_idle(self, now: float) -> bool:
        """A poll brought nothing at ``now``: whether the run is over; raises when no record
        came within the join timeout."""
        if not self.started and time.monotonic() > self.join_deadline:
            raise TimeoutError("no records within the join timeout")
        return self.started and now > self.stop_at

    def start(self, now: float) -> None:
        """Records came at ``now``: the first ones start the run (and its CPU count)."""
        if not self.started:
            self.started = True
            self.stop_at = now + self.budget_s
            self.checkpoints.append((now, 0))
            self.cpu0 = (time.process_time(), time.monotonic())


class _Ticket:
    """One pipelined batch on confluent-kafka: its records' delivery reports count it down."""

    __slots__ = ("failed", "left", "offsets", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.left = size
        self.failed: list[Any] = []
        self.offsets: dict[tuple[str, int], int] = {}

    def report(self, error: Any, _message: Any) -> None:
        self.left -= 1
        if error is not None:
            self.failed.append(error)


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
    "ceiling-kafka-python-sync": functools.partial(_ceiling_kafka_python, pipelined=False),
    "ceiling-confluent-sync": functools.partial(_ceiling_confluent, pipelined=False),
    "baseline": _baseline,
    "model-alone": _model_alone,
}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    result = KINDS[spec["kind"]](spec)
    result["rss_kib"] = vm_hwm_kib()
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
