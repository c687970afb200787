"""What a shadow adds to a batch, in the worker's process: ``python -m bench.shadow_cost``.

Scores batches of 1,000 breast-cancer events (30 features, ~800-byte JSON) with a logistic
regression in production (``BatchProcessor.process``: decode, validate, one model call, the
output records) and a second one as a 100 % shadow (``ShadowScorer.score``: rows of production's
matrix, one model call, its records), and prints each per event: the shadow's cost beside its
model call alone and beside production's whole pass (what a second decoding and validation
would repeat). Publishing the shadow's records to Kafka is not in these figures (the
``worker-1-shadow-*`` rows of ``python -m bench`` include it).
"""

from __future__ import annotations

import argparse
import time

from prometheus_client import CollectorRegistry

from bench.inprocess import demo_scoring


def measure(batch: int = 1000, rounds: int = 10, estimator: str = "lr") -> dict[str, float]:
    """Best of ``rounds`` (10 batches each), CPU microseconds per event."""
    from worker.processor import BatchProcessor, Destinations
    from worker.shadow import ShadowMetrics, ShadowScorer

    (production, shadow), records = demo_scoring(estimator, (1, 2), batch)
    processor = BatchProcessor(Destinations("out", "dlq", "g", "w"))
    scorer = ShadowScorer("shadow", 1.0, 600_000, ShadowMetrics(CollectorRegistry()))
    best = {"production": float("inf"), "shadow": float("inf"), "shadow_model": float("inf")}
    for _ in range(rounds):
        results = []
        started = time.process_time()
        for _ in range(10):
            results.append(processor.process(records, production))
        best["production"] = min(best["production"], time.process_time() - started)
        started = time.process_time()
        for result in results:
            scorer.score(shadow, production, result)
        best["shadow"] = min(best["shadow"], time.process_time() - started)
        matrix = results[0].production.matrix if results[0].production else None
        started = time.process_time()
        for _ in range(10):
            shadow.scorer.score_once(matrix)
        best["shadow_model"] = min(best["shadow_model"], time.process_time() - started)
    return {k: v / (10 * batch) * 1e6 for k, v in best.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.shadow_cost", description=__doc__)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--model", choices=("lr", "hgb"), default="lr")
    args = p.parse_args(argv)
    us = measure(args.batch, estimator=args.model)
    print(
        f"{args.model}, batches of {args.batch}: production's pass "
        f"{us['production']:.2f} us/event; "
        f"a 100 % shadow {us['shadow']:.2f} us/event, of which its model call "
        f"{us['shadow_model']:.2f} and its records {us['shadow'] - us['shadow_model']:.2f} "
        f"({us['shadow'] / us['production']:.0%} of production's pass)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
