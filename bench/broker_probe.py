"""How the broker's cost per request grows with the record batches stored in a partition.

``python -m bench.broker_probe``: one partition; between steps, single-record batches are
written (one flush each) until the partition holds the step's count; at each step, 300 round
trips of "produce one record, fetch it back" are timed, and the broker's CPU seconds over them
are read from ``/proc`` (embedded broker only).

Why it is in the bench: the embedded Tansu broker (memory storage) pays per request in
proportion to the batches already stored in the partition (measured here: 0.7 ms of broker
CPU per round trip on an empty partition, 3.7 ms after 5,000 batches, 15.7 ms after 20,000). A
stream of small batches, as a paced publisher writes them, therefore slows the broker down as
the topic fills, and a latency measurement on a long-used topic measures that history. A Kafka
cluster finds offsets through its segment indexes and does not show this growth. The latency
section of the bench runs every phase on fresh topics because of it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import kafkautil
from bench.proc import cpu_seconds, say


def probe(
    bootstrap: str, broker_pid: int | None, steps: list[int], trips: int
) -> list[dict[str, Any]]:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench-probe-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    tp = TopicPartition(topic, 0)
    rows: list[dict[str, Any]] = []
    stored = 0
    try:
        for step in steps:
            while stored < step:
                producer.produce(topic, b"x" * 800)
                producer.flush(30)  # one record per batch
                stored += 1
            _low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            consumer.assign([TopicPartition(topic, 0, high)])
            times: list[float] = []
            cpu_before = cpu_seconds(broker_pid) if broker_pid else None
            for _ in range(trips):
                started = time.perf_counter()
                producer.produce(topic, b"y" * 800)
                producer.flush(30)
                message = None
                while message is None:
                    message = consumer.poll(5)
                times.append((time.perf_counter() - started) * 1000)
            stored += trips
            cpu_after = cpu_seconds(broker_pid) if broker_pid else None
            cpu_ms = (
                (cpu_after - cpu_before) / trips * 1000
                if cpu_before is not None and cpu_after is not None
                else None
            )
            row = {
                "stored_batches": step,
                "round_trip_p50_ms": round(statistics.median(times), 2),
                "broker_cpu_ms_per_round_trip": round(cpu_ms, 2) if cpu_ms is not None else None,
            }
            rows.append(row)
            cpu_text = f"{cpu_ms:.2f} ms" if cpu_ms is not None else "n/a (external broker)"
            say(
                f"{step:>7,} stored batches: round trip p50 {row['round_trip_p50_ms']:.1f} ms, "
                f"broker CPU {cpu_text} per round trip"
            )
    finally:
        consumer.close()
        admin.delete_topics([topic])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.broker_probe",
        description="broker cost per request against the record batches stored in a partition",
    )
    parser.add_argument(
        "--steps", default="0,5000,10000,20000", help="stored batch counts (default %(default)s)"
    )
    parser.add_argument("--trips", type=int, default=300, help="round trips per step")
    args = parser.parse_args(argv)
    steps = sorted(int(s) for s in args.steps.split(","))
    with (
        tempfile.TemporaryDirectory(prefix="streamscore-probe-") as work,
        kafkautil.broker(Path(work) / "broker") as (bootstrap, text, pid),
    ):
        say(f"broker: {text} at {bootstrap}")
        probe(bootstrap, pid, steps, args.trips)
    return 0


if __name__ == "__main__":
    sys.exit(main())
