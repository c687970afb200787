"""Notices on the control topic: "alias A of model M now points at version V".

The model store is the source of truth; the notice only tells workers on every host to look at
it now instead of at their next poll. Announcing is best effort: if the broker is unreachable,
workers still see the change on their next store poll.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from streamscore import jsonio
from streamscore.config import KafkaConfig
from streamscore.exceptions import BrokerError
from streamscore.kafka_admin import client_kwargs

log = logging.getLogger(__name__)

NOTICE_ALIAS_MOVED = "alias-moved"


def announce_alias_move(
    kafka: KafkaConfig, *, model: str, alias: str, version: int, timeout_s: float = 3.0
) -> bool:
    """Publish an alias-moved notice; True when the broker acknowledged it."""
    notice = {
        "type": NOTICE_ALIAS_MOVED,
        "model": model,
        "alias": alias,
        "version": version,
        "at": time.time(),
    }
    if not _reachable(kafka.bootstrap_servers):
        log.info(
            "Kafka at %s is not reachable: no notice for %s %s -> v%s; workers see the move "
            "on their next store poll",
            kafka.bootstrap_servers,
            model,
            alias,
            version,
        )
        return False
    producer: Any = None
    try:
        producer = KafkaProducer(**client_kwargs(kafka), max_block_ms=int(timeout_s * 1000))
        producer.send(kafka.control_topic, value=jsonio.dumps(notice)).get(timeout=timeout_s)
        return True
    except Exception as exc:  # noqa: BLE001
        log.warning(
            "could not announce %s %s -> v%s on %s (%s); workers will still see it on their "
            "next store poll",
            model,
            alias,
            version,
            kafka.control_topic,
            exc,
        )
        return False
    finally:
        if producer is not None:
            producer.close(timeout=1)


def require_acknowledged(kafka: KafkaConfig, announced: bool, what: str, timeout_s: float) -> bool:
    """For a command line after :func:`announce_alias_move`: False when Kafka was not
    reachable (nothing waited: workers see the move on their next store poll); raises
    :class:`BrokerError` when it was reachable but did not acknowledge the notice within
    ``timeout_s`` (a wait that ran out fails the command, naming what it waited for)."""
    if announced:
        return True
    if not _reachable(kafka.bootstrap_servers):
        return False
    raise BrokerError(
        f"{what}, but Kafka at {kafka.bootstrap_servers} did not acknowledge the notice on "
        f"{kafka.control_topic} within {timeout_s:g} s; running workers still see the move on "
        f"their next store poll ([worker] reload_poll_ms)"
    )


def _reachable(bootstrap: str, timeout_s: float = 0.5) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


#: A topic another service creates (the monitor's quality topic) is looked for again this often.
TOPIC_RECHECK_S = 5.0


def seek_to_time(consumer: Any, tps: list[TopicPartition], since: float) -> None:
    """Start at the first record at or after ``since`` (epoch seconds); from the beginning if
    the broker cannot look offsets up by time."""
    try:
        found = consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
    except Exception:  # noqa: BLE001 - a broker without the lookup: read all and filter
        consumer.seek_to_beginning(*tps)
        return
    for tp in tps:
        hit = found.get(tp)
        if hit is not None:
            consumer.seek(tp, hit.offset)
        else:  # nothing that recent in this partition
            consumer.seek_to_end(tp)


class ControlListener:
    """Reads the control topic from its end in a thread and calls ``on_notice`` for each notice.

    ``topic`` reads another topic of JSON records the same way (the monitor's quality topic);
    one that does not exist yet is looked for every :data:`TOPIC_RECHECK_S` (never created
    here). ``since_s`` starts that many seconds back instead of at the end."""

    def __init__(
        self,
        kafka: KafkaConfig,
        on_notice: Callable[[dict[str, Any]], None],
        *,
        topic: str = "",
        since_s: float | None = None,
    ) -> None:
        self.kafka = kafka
        self.on_notice = on_notice
        self.topic = topic or kafka.control_topic
        self.since_s = since_s
        self._stop = threading.Event()
        name = "control-listener" if self.topic == kafka.control_topic else f"{self.topic}-reader"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _open(self) -> Any | None:
        """A consumer assigned to every partition of the topic, at its start position; None
        while a topic that is not the control topic does not exist."""
        consumer = KafkaConsumer(
            **client_kwargs(self.kafka),
            enable_auto_commit=False,
            allow_auto_create_topics=False,  # created with 1 partition, not 4
        )
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions and self.topic != self.kafka.control_topic:
            consumer.close()
            return None
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions or {0})]
        consumer.assign(tps)
        if self.since_s is None:
            consumer.seek_to_end(*tps)
        else:
            seek_to_time(consumer, tps, time.time() - self.since_s)
        return consumer

    def _run(self) -> None:
        consumer: Any = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._open()
                    if consumer is None:
                        self._stop.wait(TOPIC_RECHECK_S)
                        continue
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        try:
                            notice = jsonio.loads(record.value)
                        except jsonio.JSONDecodeError:
                            continue
                        if isinstance(notice, dict):
                            self.on_notice(notice)
            except Exception as exc:  # noqa: BLE001
                log.warning("%s listener: %s; retrying", self.topic, exc)
                if consumer is not None:
                    consumer.close()
                    consumer = None
                self._stop.wait(1.0)
        if consumer is not None:
            consumer.close()
