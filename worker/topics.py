"""The worker's topics stay there: created at start and again whenever they go missing.

A broker that comes back empty (the embedded memory-only broker after a restart, a cluster
restored without its topics) would otherwise get its topics from client auto-creation, with the
broker's default partition count (the control topic with 4 instead of 1) and no dead-letter
topic until the first dead letter. The worker's clients never auto-create
(``allow_auto_create_topics`` off); :class:`TopicKeeper` checks every ``[worker]
topic_check_ms`` in a thread of its own (the scoring loop never waits for it) and creates what
is missing with :func:`~streamscore.kafka_admin.ensure_topics`.
"""

from __future__ import annotations

import logging
import threading

from streamscore.config import KafkaConfig
from streamscore.exceptions import StreamscoreError
from streamscore.kafka_admin import ensure_topics, recreate_empty_topic

log = logging.getLogger(__name__)


def ensure_worker_extras(
    kafka: KafkaConfig, *, shadow: bool = False, timeout_s: float | None = None
) -> None:
    """Topics a worker writes besides predictions and dead letters: the drift counts of a
    version with a reference profile go to ``monitoring_topic``, a shadow's predictions
    (``shadow``: ``[worker] shadow_alias`` is set) to ``shadow_topic`` (the clients never
    auto-create a topic, so a missing one would hold the batch that carries them)."""
    topics = [kafka.monitoring_topic, *([kafka.shadow_topic] if shadow else [])]
    ensure_topics(kafka, topics, timeout_s=timeout_s)


class TopicKeeper:
    def __init__(self, kafka: KafkaConfig, interval_ms: int, *, shadow: bool = False) -> None:
        self.kafka = kafka
        self.shadow = shadow
        self.interval_s = interval_ms / 1000
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="topic-keeper", daemon=True)
        self._failing = False

    def start(self) -> None:
        if self.interval_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)  # a check blocked on a dead broker is abandoned

    def check(self) -> None:
        """Create whatever topic is missing now; one log line per change of state."""
        try:
            counts = ensure_topics(self.kafka, timeout_s=min(self.interval_s, 5.0))
            ensure_worker_extras(
                self.kafka, shadow=self.shadow, timeout_s=min(self.interval_s, 5.0)
            )
            control = self.kafka.control_topic
            # The control topic keeps notices in order on one partition; an empty one that a
            # client's auto-creation made with more is made again (it holds nothing to lose).
            if counts.get(control, 1) != 1 and recreate_empty_topic(self.kafka, control, 1):
                log.info("recreated %s with 1 partition (it had %d)", control, counts[control])
        except Exception as exc:  # any failure: the keeper itself must live on
            if not isinstance(exc, StreamscoreError):
                log.debug("topic check raised", exc_info=True)
            if not self._failing:
                log.warning(
                    "cannot check the topics (%s); trying again every %gs", exc, self.interval_s
                )
            self._failing = True
            return
        if self._failing:
            log.info("topics checked again on %s", self.kafka.bootstrap_servers)
        self._failing = False

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()
