"""``[kafka]`` and ``[worker]`` settings in each Kafka client's spelling.

One function per client and role, so both clients are configured side by side and a setting
added to one is seen missing in the other. Neither client library is imported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamscore.config import Config, KafkaConfig, WorkerConfig

if TYPE_CHECKING:
    from worker.membership import Membership


def transaction_timeout_ms(worker: WorkerConfig) -> int:
    """How long the broker keeps a worker's transaction open before aborting it itself."""
    return max(60_000, 2 * worker.delivery_timeout_ms)


def fetch_max_wait_ms(worker: WorkerConfig) -> int:
    """How long the broker may hold a fetch: the batch wait, within 10..500 ms."""
    return min(max(worker.max_wait_ms, 10), 500)


# ---------------------------------------------------------------------- kafka-python


def kafka_python_common(kafka: KafkaConfig, client_id: str) -> dict[str, Any]:
    from streamscore.kafka_admin import client_kwargs  # imports kafka-python

    common = client_kwargs(kafka)
    common["client_id"] = client_id
    return common


def kafka_python_consumer(
    cfg: Config, client_id: str, membership: Membership | None = None
) -> dict[str, Any]:
    k, w = cfg.kafka, cfg.worker
    exactly_once = membership is not None and membership.exactly_once
    return {
        **kafka_python_common(k, client_id),
        "group_id": k.group_id,
        "group_instance_id": membership.group_instance_id if membership else None,
        # Exactly-once: never score what an upstream transaction aborted.
        "isolation_level": "read_committed" if exactly_once else "read_uncommitted",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": k.session_timeout_ms,
        "heartbeat_interval_ms": k.heartbeat_interval_ms,
        "max_poll_interval_ms": k.max_poll_interval_ms,
        "max_poll_records": w.max_batch_records,
        "fetch_max_bytes": w.fetch_max_bytes,
        "max_partition_fetch_bytes": w.max_partition_fetch_bytes,
        "fetch_max_wait_ms": fetch_max_wait_ms(w),
        # Topics are created by streamscore with their configured partition counts (the
        # worker's topic keeper), never by a fetch or a send on an empty broker.
        "allow_auto_create_topics": False,
    }


def kafka_python_producer(
    cfg: Config, client_id: str, membership: Membership | None = None
) -> dict[str, Any]:
    k, w = cfg.kafka, cfg.worker
    transactional: dict[str, Any] = {}
    if membership is not None and membership.exactly_once:
        transactional = {
            "transactional_id": membership.transactional_id,
            "enable_idempotence": True,
            "transaction_timeout_ms": transaction_timeout_ms(w),
        }
    return {
        **transactional,
        **kafka_python_common(k, client_id),
        "acks": "all",
        "linger_ms": w.linger_ms,
        "batch_size": w.producer_batch_bytes,
        "max_request_size": w.max_message_bytes,
        "compression_type": None if w.compression == "none" else w.compression,
        # kafka-python refuses a delivery timeout below linger + request timeout.
        "delivery_timeout_ms": max(w.delivery_timeout_ms, w.linger_ms + k.request_timeout_ms),
        "allow_auto_create_topics": False,
    }


# ---------------------------------------------------------------------- confluent-kafka


def confluent_settings(kafka: KafkaConfig) -> dict[str, Any]:
    """Connection and security settings in librdkafka's spelling."""
    out: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": kafka.client_id,
        "security.protocol": kafka.security_protocol.lower(),
        "socket.timeout.ms": kafka.request_timeout_ms,
    }
    if kafka.sasl_mechanism:
        out["sasl.mechanisms"] = kafka.sasl_mechanism
    if kafka.sasl_username:
        out["sasl.username"] = kafka.sasl_username
    if kafka.sasl_password:
        out["sasl.password"] = kafka.sasl_password.reveal()
    for ours, theirs in (
        ("ssl_cafile", "ssl.ca.location"),
        ("ssl_certfile", "ssl.certificate.location"),
        ("ssl_keyfile", "ssl.key.location"),
    ):
        if getattr(kafka, ours):
            out[theirs] = getattr(kafka, ours)
    return out


def confluent_consumer(
    cfg: Config, client_id: str, membership: Membership | None = None
) -> dict[str, Any]:
    """Without the callbacks (``error_cb``), which the transport adds."""
    k, w = cfg.kafka, cfg.worker
    member: dict[str, Any] = {}
    if membership is not None and membership.group_instance_id:
        member["group.instance.id"] = membership.group_instance_id
    if membership is not None and membership.exactly_once:
        member["isolation.level"] = "read_committed"  # never score an aborted upstream record
    return {
        **confluent_settings(k),
        **member,
        "client.id": client_id,
        "group.id": k.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": k.session_timeout_ms,
        "heartbeat.interval.ms": k.heartbeat_interval_ms,
        "max.poll.interval.ms": k.max_poll_interval_ms,
        "fetch.max.bytes": w.fetch_max_bytes,
        "max.partition.fetch.bytes": w.max_partition_fetch_bytes,
        "fetch.wait.max.ms": fetch_max_wait_ms(w),
        "enable.partition.eof": False,
        # librdkafka prefetches up to 64 MiB by default; the worker needs a batch ahead.
        "queued.max.messages.kbytes": max(2 * w.fetch_max_bytes // 1024, 1024),
        # ... and, when that queue is full, waits 1 s by default before fetching again,
        # which starves a fast worker: check again after a poll wait instead.
        "fetch.queue.backoff.ms": max(w.max_wait_ms, 1),
        "allow.auto.create.topics": False,
    }


def confluent_producer(
    cfg: Config, client_id: str, membership: Membership | None = None
) -> dict[str, Any]:
    """Without the callbacks: the transport passes one (``on_delivery``) with each record of
    a batch, which counts the batch's reports down (:mod:`worker.confluent_io`)."""
    w = cfg.worker
    transactional: dict[str, Any] = {}
    if membership is not None and membership.exactly_once:
        transactional = {
            "transactional.id": membership.transactional_id,
            "transaction.timeout.ms": transaction_timeout_ms(w),
        }
    return {
        **transactional,
        **confluent_settings(cfg.kafka),
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": w.linger_ms,
        "batch.size": w.producer_batch_bytes,
        "message.max.bytes": w.max_message_bytes,
        "compression.type": w.compression,
        "delivery.timeout.ms": w.delivery_timeout_ms,
        # Every record's report, successes too: a batch is settled when all of its arrived
        # (the pipelined loop waits for one batch, not for the producer's whole queue).
        "delivery.report.only.error": False,
        "allow.auto.create.topics": False,
    }
