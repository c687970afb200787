"""The Kafka brokers streamscore runs for demos, tests and benchmarks (not needed in production).

* :mod:`broker.kafka`: Apache Kafka itself (KRaft, one node), from Maven Central; needs Java 17+
  and Maven.
"""
