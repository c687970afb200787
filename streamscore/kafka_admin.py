"""Topics and offsets: the one helper the demo, the tests and the workers use.

* :func:`client_kwargs`: connection settings for every kafka-python client we create.
* :func:`ensure_topics`: creates the configured topics with the configured partition count
  (never relying on the broker's auto-creation), safe when several workers start together.
* :func:`high_watermarks`, :func:`committed_offsets`, :func:`consumer_lag`: offsets that are right
  on the embedded Tansu broker *and* on Apache Kafka (see :func:`high_watermarks` for why that
  takes care).

Kafka errors become :class:`~streamscore.exceptions.BrokerError` here, naming the bootstrap
servers and the fix.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import TopicPartition

from streamscore.config import KafkaConfig
from streamscore.exceptions import BrokerError, ConfigError

log = logging.getLogger(__name__)

_LEGAL_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_FIX = (
    "is the broker running? `streamscore broker start`, or set [kafka] bootstrap_servers "
    "/ STREAMSCORE__KAFKA__BOOTSTRAP_SERVERS"
)


def client_kwargs(kafka: KafkaConfig) -> dict[str, Any]:
    """Keyword arguments for ``KafkaConsumer`` / ``KafkaProducer`` / ``KafkaAdminClient``.

    Bootstrap servers, client id, request timeout (also the bootstrap timeout, so an
    unreachable cluster fails within it), security settings, and ``api_version=None``
    (ask the broker). Holds the SASL password: never log the result.
    """
    return {
        "bootstrap_servers": bootstrap_list(kafka),
        "client_id": kafka.client_id,
        "request_timeout_ms": kafka.request_timeout_ms,
        "bootstrap_timeout_ms": kafka.request_timeout_ms,
        "api_version": None,
        **kafka.client_security(),
    }


def bootstrap_list(kafka: KafkaConfig) -> list[str]:
    """``[kafka] bootstrap_servers`` split into ``host:port`` entries."""
    return [s.strip() for s in kafka.bootstrap_servers.split(",") if s.strip()]


def unreachable(kafka: KafkaConfig, exc: BaseException, doing: str = "answer") -> BrokerError:
    """The error for "Kafka did not do what we asked", with the address and the fix."""
    return BrokerError(
        f"Kafka at {kafka.bootstrap_servers} did not {doing} ({type(exc).__name__}: {exc}); {_FIX}"
    )


@contextmanager
def _admin(kafka: KafkaConfig, doing: str) -> Iterator[Any]:
    """A ``KafkaAdminClient``, closed afterwards; kafka errors become BrokerError."""
    try:
        admin = KafkaAdminClient(**client_kwargs(kafka))
    except (KafkaError, OSError, ValueError) as exc:
        raise unreachable(kafka, exc) from exc
    try:
        yield admin
    except (KafkaError, OSError) as exc:
        raise unreachable(kafka, exc, doing) from exc
    finally:
        admin.close()


@contextmanager
def _consumer(kafka: KafkaConfig, doing: str, **settings: Any) -> Iterator[Any]:
    """A group-less ``KafkaConsumer`` that never auto-creates topics, closed afterwards."""
    try:
        consumer = KafkaConsumer(
            **client_kwargs(kafka),
            group_id=None,
            enable_auto_commit=False,
            allow_auto_create_topics=False,
            **settings,
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise unreachable(kafka, exc) from exc
    try:
        yield consumer
    except (KafkaError, OSError) as exc:
        raise unreachable(kafka, exc, doing) from exc
    finally:
        consumer.close()


# --------------------------------------------------------------------------- topics


def ensure_topics(
    kafka: KafkaConfig,
    topics: Iterable[str] | None = None,
    *,
    partitions: int | None = None,
    timeout_s: float | None = None,
) -> dict[str, int]:
    """Create the topics that are missing; return ``topic → partition count`` once usable.

    Default topics: input, output and dead-letter with ``partitions`` (default
    ``[kafka] partitions``), and the control topic with 1 partition (model-swap notices need
    no parallelism, and one partition keeps them in order). ``topics`` names others instead,
    all with ``partitions``. Replication factor: ``[kafka] replication_factor``.

    Returns once the metadata shows every partition with a leader (at most ``timeout_s``,
    default ``[kafka] request_timeout_ms``). An existing topic with another partition count is
    left alone and logged as a warning. Safe when several workers start together: losing the
    creation race (``TopicAlreadyExists``) is success.
    """
    count = partitions or kafka.partitions
    if topics is None:
        wanted = {
            kafka.input_topic: count,
            kafka.output_topic: count,
            kafka.dead_letter_topic: count,
            kafka.control_topic: 1,
        }
    else:
        wanted = dict.fromkeys(topics, count)
    for topic in wanted:
        check_topic_name(topic)
    wait_s = timeout_s if timeout_s is not None else kafka.request_timeout_ms / 1000
    with _admin(kafka, "create topics") as admin:
        existing = _partition_counts(admin, list(wanted))
        missing = {t: n for t, n in wanted.items() if t not in existing}
        if missing:
            _create(admin, kafka, missing)
        counts = _wait_for_partitions(admin, kafka, wanted, wait_s)
    for topic, n in wanted.items():
        if counts[topic] != n:
            log.warning(
                "topic %s has %d partitions, the configuration asks for %d; streamscore does "
                "not change existing topics (recreate it, or set [kafka] partitions = %d)",
                topic,
                counts[topic],
                n,
                counts[topic],
            )
    return counts


def recreate_empty_topic(kafka: KafkaConfig, topic: str, partitions: int) -> bool:
    """Delete ``topic`` and create it again with ``partitions`` if it holds no record; False
    (and nothing changed) when it holds any. For a topic a client's auto-creation made with
    the broker's default partition count before streamscore could create it."""
    if any(high_watermarks(kafka, topic).values()):
        return False
    with _admin(kafka, f"recreate {topic}") as admin:
        admin.delete_topics([topic])
    deadline = time.monotonic() + kafka.request_timeout_ms / 1000
    while True:
        try:
            ensure_topics(kafka, [topic], partitions=partitions)
            return True
        except BrokerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def check_topic_name(topic: str) -> None:
    """Kafka's rule: 1-249 of ``[A-Za-z0-9._-]``, not ``.`` or ``..``.

    Checked here because Tansu accepts names that Apache Kafka refuses.
    """
    if not _LEGAL_TOPIC.fullmatch(topic) or topic in (".", ".."):
        raise ConfigError(
            f"topic name {topic!r} is not valid in Kafka: use 1-249 letters, digits, '.', '_' "
            f"or '-' ([kafka] input_topic, output_topic, dead_letter_topic, control_topic)"
        )


def _partition_counts(admin: Any, topics: list[str]) -> dict[str, int]:
    """``topic → partition count`` for those of ``topics`` that exist with a leader everywhere.

    Uses the admin client's metadata request, which never auto-creates topics.
    """
    counts: dict[str, int] = {}
    for info in admin.describe_topics(topics):
        parts = info.get("partitions") or []
        if info.get("error_code", 0) != 0 or not parts:
            continue
        if all(p.get("error_code", 0) == 0 and p.get("leader_id", -1) >= 0 for p in parts):
            counts[info["name"]] = len(parts)
    return counts


def _create(admin: Any, kafka: KafkaConfig, missing: dict[str, int]) -> None:
    request = {
        topic: {"num_partitions": n, "replication_factor": kafka.replication_factor}
        for topic, n in missing.items()
    }
    response = admin.create_topics(request, raise_errors=False)
    created, problems = [], []
    for result in response.get("topics", []):
        code = result.get("error_code", 0)
        if code == 0:
            created.append(result["name"])
        elif code != TopicAlreadyExistsError.errno:  # lost the race: someone else created it
            problems.append(f"{result['name']}: {result.get('error_message') or code}")
    if problems:
        raise BrokerError(
            f"Kafka at {kafka.bootstrap_servers} refused to create topics "
            f"({'; '.join(problems)}); check [kafka] partitions and replication_factor "
            f"({kafka.replication_factor}) against the cluster"
        )
    if created:
        log.info(
            "created topics %s",
            ", ".join(f"{t} ({missing[t]} partition{'s' * (missing[t] != 1)})" for t in created),
        )


def _wait_for_partitions(
    admin: Any, kafka: KafkaConfig, wanted: dict[str, int], timeout_s: float
) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        counts = _partition_counts(admin, list(wanted))
        if len(counts) == len(wanted):
            return counts
        if time.monotonic() > deadline:
            absent = sorted(set(wanted) - set(counts))
            raise BrokerError(
                f"topics {', '.join(absent)} did not show all partitions with a leader on "
                f"{kafka.bootstrap_servers} within {timeout_s:g} s"
            )
        time.sleep(0.05)


# --------------------------------------------------------------------------- offsets


def high_watermarks(
    kafka: KafkaConfig, topic: str, *, timeout_s: float | None = None
) -> dict[int, int]:
    """``partition → end offset`` (the offset the next record will get); ``{}`` if no topic.

    Read from the high watermark of **fetch** responses, which is right on Tansu and on Apache
    Kafka alike. The shortcuts are wrong on Tansu 0.6: ``ListOffsets(LATEST)`` answers the
    base offset of the partition's last record batch + 1, not the end. That request is behind
    ``KafkaAdminClient.list_partition_offsets``, ``KafkaConsumer.end_offsets`` and
    ``seek_to_end()`` + ``position()`` alike. Measured with kafka-python 3.0.12: a partition
    holding 140 records in 5 batches reports 94; one holding 25,000 reports 24,873. Only a
    partition whose last batch has a single record comes out right.

    How: assign every partition, ``seek_to_end`` (exact on Kafka, a lower bound on Tansu
    that is at most one batch short), then poll until every partition has had a fetch
    response, and take ``consumer.highwater(tp)``. A fetch response carries the high
    watermark whether or not it returned records, so this moves at most the last batch of
    each partition (100,000 records over 4 partitions: 13 ms, against 650 ms when fetching
    from offset 0, as Tansu ignores ``max_partition_fetch_bytes``). Should the lower bound
    ever be past the end, ``auto_offset_reset`` falls back to the earliest offset and the
    answer stays right.
    """
    wait_s = timeout_s if timeout_s is not None else kafka.request_timeout_ms / 1000
    ends, _ = _watermarks(kafka, topic, wait_s, with_starts=False)
    return ends


def _watermarks(
    kafka: KafkaConfig, topic: str, timeout_s: float, *, with_starts: bool
) -> tuple[dict[int, int], dict[int, int]]:
    """End offsets (fetch high watermarks) and, if asked, start offsets of every partition."""
    with _consumer(
        kafka,
        f"report the offsets of {topic}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
        max_poll_records=10_000,
    ) as consumer:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            return {}, {}
        tps = [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(tps)
        starts: dict[int, int] = {}
        if with_starts:  # ListOffsets(EARLIEST) is right on Tansu (always 0 there) and Kafka
            starts = {tp.partition: int(o) for tp, o in consumer.beginning_offsets(tps).items()}
        consumer.seek_to_end(*tps)
        deadline = time.monotonic() + timeout_s
        ends: dict[int, int] = {}
        while True:
            consumer.poll(timeout_ms=20)
            for tp in tps:
                value = consumer.highwater(tp)
                if value is not None:
                    ends[tp.partition] = int(value)
            if len(ends) == len(tps):
                return ends, starts
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"Kafka at {kafka.bootstrap_servers} did not report the end offsets of "
                    f"{topic} within {timeout_s:g} s ({len(ends)} of {len(tps)} partitions); "
                    f"{_FIX}"
                )


def committed_offsets(kafka: KafkaConfig, group_id: str, topic: str) -> dict[int, int]:
    """``partition → committed offset`` of ``group_id`` on ``topic``; partitions without one
    are left out (``{}`` for an unknown group).

    Uses ``KafkaAdminClient.list_group_offsets`` (kafka-python 3's name for it);
    ``describe_groups`` is avoided because it crashes on Tansu.
    """
    with _admin(kafka, f"report the offsets of group {group_id}") as admin:
        offsets = admin.list_group_offsets({group_id: None}).get(group_id, {})
    return {
        tp.partition: int(meta.offset)
        for tp, meta in offsets.items()
        if tp.topic == topic and meta.offset is not None and meta.offset >= 0
    }


def consumer_lag(kafka: KafkaConfig, group_id: str, topic: str) -> dict[int, int]:
    """``partition → records not yet committed`` by ``group_id`` on ``topic``.

    End offset (fetch high watermark, see :func:`high_watermarks`) minus the committed offset;
    for a partition the group never committed, minus its earliest offset (where a new group
    starts: streamscore consumers use ``auto_offset_reset="earliest"``).
    """
    ends, starts = _watermarks(kafka, topic, kafka.request_timeout_ms / 1000, with_starts=True)
    committed = committed_offsets(kafka, group_id, topic)
    return {p: max(end - committed.get(p, starts.get(p, 0)), 0) for p, end in sorted(ends.items())}


# --------------------------------------------------------------------------- the broker

#: The cluster id the embedded Tansu broker reports (Apache Kafka's is 22 base64 characters).
TANSU_CLUSTER_ID = "tansu_cluster"


def cluster_id(kafka: KafkaConfig) -> str | None:
    """The cluster id the brokers report in their metadata (None when they report none)."""
    with _consumer(kafka, "answer a metadata request") as consumer:
        consumer.topics()  # one metadata round trip
        value = consumer._client.cluster.cluster_id  # noqa: SLF001 - kafka-python keeps it here
    return str(value) if value else None


def is_tansu(kafka: KafkaConfig) -> bool:
    """True when ``[kafka] bootstrap_servers`` is the embedded Tansu broker."""
    return cluster_id(kafka) == TANSU_CLUSTER_ID
