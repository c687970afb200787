"""Where a worker's CPU goes per event, stage by stage: ``python -m bench.stages``.

The confluent-kafka worker reads a third of its client's pipelined ceiling (README,
Performance). This splits one event's CPU on the worker's own scoring path, in the process,
without a broker: batches of 1,000 breast-cancer events (30 features, ~800-byte JSON) through
``BatchProcessor.process`` (decode, validate, build the matrix, one model call, encode the
predictions with their lineage headers), each stage also timed alone, and the records handed
to a confluent-kafka producer (``produce`` per record, with headers; not connected: the
client's own cost of taking a record, before any network work).
Next to them, the budget per event that 70 % of a given ceiling leaves (``--ceiling``,
events/s): what the whole path would have to fit in.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from bench.inprocess import demo_scoring
from streamscore import jsonio

BATCH = 1000


def _best(fn: Callable[[], Any], rounds: int, per: int) -> float:
    """Best of ``rounds`` calls of ``fn`` (each handling ``per`` events), CPU us per event."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best / per * 1e6


def measure(estimator: str = "lr", rounds: int = 15) -> dict[str, float]:
    """CPU microseconds per event of each stage (best of ``rounds`` x 10 batches)."""
    from worker.processor import BatchProcessor, Destinations

    (serving,), records = demo_scoring(estimator, (1,), BATCH)
    processor = BatchProcessor(Destinations("out", "dlq", "g", "w"))
    result = processor.process(records, serving)
    matrix = result.production.matrix if result.production else None
    bodies = [b for b in result.bodies if b is not None]
    outputs = [r for r in result.records if r.topic == "out"]
    n = 10 * BATCH

    def ten(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(10):
                fn()

        return run

    loads, dumps = jsonio.loads, jsonio.dumps
    us = {
        "whole pass": _best(ten(lambda: processor.process(records, serving)), rounds, n),
        "decode (JSON → dict)": _best(ten(lambda: [loads(r.value) for r in records]), rounds, n),
        "model call": _best(ten(lambda: serving.scorer.score_once(matrix)), rounds, n),
        "encode (dict → JSON)": _best(ten(lambda: [dumps(b) for b in bodies]), rounds, n),
        "lineage headers": _best(ten(lambda: [serving.headers(r) for r in records]), rounds, n),
    }
    us["validate, matrix, bodies, records (the rest)"] = us["whole pass"] - sum(
        v for k, v in us.items() if k != "whole pass"
    )
    us["confluent-kafka produce()"] = _confluent_produce(outputs, rounds)
    return us


def _confluent_produce(outputs: list[Any], rounds: int) -> float:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": "127.0.0.1:9",  # never reached: the call's own cost
            "linger.ms": 5,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
            "message.timeout.ms": 600_000,
            "log_level": 0,
        }
    )

    def delivered(err: Any, msg: Any) -> None:
        pass

    def run() -> None:
        produce, poll = producer.produce, producer.poll
        for _ in range(10):
            for r in outputs:
                produce(r.topic, r.value, r.key, headers=r.headers, on_delivery=delivered)
            poll(0)

    try:
        return _best(run, rounds, 10 * len(outputs))
    finally:
        producer.purge()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__)
    p.add_argument("--model", choices=("lr", "hgb"), default="lr")
    p.add_argument(
        "--ceiling",
        type=float,
        default=173_383,
        help="a client's pipelined ceiling, events/s (default: confluent-kafka's, README)",
    )
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # as a worker runs its model ([worker] model_threads = 1)
        us = measure(args.model)
    budget = 1e6 / (0.7 * args.ceiling)
    print(f"{args.model}, batches of {BATCH}, CPU us per event (best of 15 x 10 batches):")
    print("| stage | us/event |")
    print("|---|---:|")
    for stage, value in us.items():
        print(f"| {stage} | {value:.2f} |")
    print(f"| budget at 70 % of {args.ceiling:,.0f} events/s, for everything | {budget:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
