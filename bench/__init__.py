"""streamscore's throughput / latency benchmark (``python -m bench`` or ``make bench``).

It starts the embedded Tansu broker on a free port (or uses ``KAFKA_BOOTSTRAP_SERVERS``),
trains the demo models, and measures side by side on fresh topics and groups:

* the Kafka client ceiling (raw passthrough) with kafka-python and confluent-kafka;
* the per-message worker a data scientist writes first (the baseline);
* the same job in Quix Streams (the peer);
* streamscore's worker with 1 and 2 processes;
* end-to-end latency at fixed publish rates, model hot-swap latency, worker peak RSS.

See ``bench/README.md``. Results go to ``bench/results/latest.{json,md}``.
"""
