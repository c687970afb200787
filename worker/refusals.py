"""What replaces an output the broker refused for good: its input's ``publish`` dead letter.

A prediction or dead letter over the topic's limit (a broker whose ``message.max.bytes`` is
below ``[worker] max_message_bytes``) is refused on every attempt. Instead of retrying it, the
worker publishes the dead letter of the input it came from (found by its source headers), with
the value cut to fit; a dead letter refused again carries none of the value. Outputs of no
input (drift counts) and a shadow's predictions are dropped with an error in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from streamscore.config import KafkaConfig
from streamscore.wire import H_SOURCE_OFFSET, H_SOURCE_PARTITION, H_SOURCE_TOPIC, OutRecord
from worker.processor import BatchProcessor, BatchResult, ServingModel
from worker.transport import Refused

log = logging.getLogger(__name__)


class RefusedReplacer:
    """``replace(refused) -> dead letters`` for one batch (see the module docstring)."""

    def __init__(
        self,
        processor: BatchProcessor,
        model: ServingModel,
        inputs: Sequence[Any],
        result: BatchResult,
        kafka: KafkaConfig,
    ) -> None:
        self.processor = processor
        self.model = model
        self.inputs = inputs
        self.result = result
        self.kafka = kafka

    def __call__(self, refused: list[Refused]) -> list[OutRecord]:
        by_source = {(r.topic, r.partition, r.offset): r for r in self.inputs}
        out: list[OutRecord] = []
        for record, reason in refused:
            where = source_of(record)
            source = by_source.get(where) if where is not None else None
            if record.topic == self.kafka.shadow_topic:
                source = None  # a shadow's prediction never becomes a production dead letter
            if source is None:
                log.error(
                    "%s: a record without a source input was refused for good and is dropped: %s",
                    record.topic,
                    reason,
                )
                continue
            what = "dead letter" if record.topic == self.kafka.dead_letter_topic else "prediction"
            log.warning(
                "%s[%d] offset %d: its %s was refused for good (%s); publishing its dead letter",
                source.topic,
                source.partition,
                source.offset,
                what,
                reason,
            )
            out.append(self.processor.refused(source, self.model, what, reason))
            if what == "prediction":  # (a dead letter replaced is counted already)
                self.result.scored -= 1
                self.result.dead_letters["publish"] += 1
        return out


def source_of(record: OutRecord) -> tuple[str, int, int] | None:
    """``(topic, partition, offset)`` of the input an output came from (its source headers)."""
    found = {name: value for name, value in record.headers if name in _SOURCE}
    try:
        return (
            found[H_SOURCE_TOPIC].decode(),
            int(found[H_SOURCE_PARTITION]),
            int(found[H_SOURCE_OFFSET]),
        )
    except (KeyError, ValueError):
        return None


_SOURCE = frozenset({H_SOURCE_TOPIC, H_SOURCE_PARTITION, H_SOURCE_OFFSET})
