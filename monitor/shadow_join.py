"""The shadow's predictions joined with the labels, beside production's on the same ids.

Each record of ``[kafka] shadow_topic`` holds a batch's shadow predictions and production's
predictions of the same events, by column (:class:`worker.shadow.ShadowColumns`; a record of one
event, as workers wrote them before, is read too). Two join states, files next to the monitor's own
(``join.shadow.sqlite``, ``join.paired.sqlite``), receive them: the shadow's predictions, and
production's predictions of the shadowed ids only. Both get every label. Their windows then
compare the two models on exactly the same ids (:func:`monitor.candidate.judge`).

Offsets: each state stores the shadow topic's offsets with what they produced. The service
applies these states before its main state, so after a crash the labels it re-reads (from the
main state's offsets) are at most labels these already joined, which a join state ignores as
duplicates; nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.joinstate import JoinState, Label, Prediction
from streamscore import jsonio
from streamscore.wire import shadow_rows

log = logging.getLogger(__name__)


@dataclass
class ShadowBatch:
    """The shadow topic's records of one poll, parsed."""

    shadow: list[Prediction] = field(default_factory=list)
    production: list[Prediction] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    skipped: int = 0


def sibling(path: Path, part: str) -> Path:
    """``var/monitor/join.sqlite`` -> ``var/monitor/join.<part>.sqlite``."""
    return path.with_name(f"{path.stem}.{part}{path.suffix}")


class ShadowJoin:
    def __init__(
        self,
        open_state: Callable[[Path], JoinState],
        path: Path,
        model_name: str,
        task_of: Callable[[int, dict[str, Any]], str],
    ) -> None:
        self.shadow = open_state(sibling(path, "shadow"))
        self.production = open_state(sibling(path, "paired"))
        self.model_name = model_name
        self.task_of = task_of

    def offsets(self) -> dict[tuple[str, int], int]:
        """Where to resume the shadow topic: the lower of the two states' offsets."""
        a, b = self.shadow.offsets(), self.production.offsets()
        return {tp: min(a.get(tp, o), b.get(tp, o)) for tp, o in (a | b).items()}

    def parse(self, topic: str, partition: int, records: Sequence[Any], out: ShadowBatch) -> None:
        out.offsets[(topic, partition)] = records[-1].offset + 1
        for record in records:
            try:
                value = jsonio.loads(record.value)
                model = value.get("model") or {}
                if model.get("name") != self.model_name:
                    out.skipped += 1
                    continue
                parsed = [self._parse_one(row, record.timestamp) for row in shadow_rows(value)]
            except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                out.skipped += 1
                log.warning(
                    "%s[%d] offset %d skipped: not a shadow prediction (%s: %s)",
                    topic,
                    partition,
                    record.offset,
                    type(exc).__name__,
                    exc,
                )
                continue
            for shadow, paired in parsed:  # all of a record or nothing
                out.shadow.append(shadow)
                out.production.append(paired)

    def _parse_one(self, value: dict[str, Any], timestamp: int) -> tuple[Prediction, Prediction]:
        """One event's shadow prediction and production's (:func:`streamscore.wire.shadow_rows`)."""
        at = int(value.get("scored_at") or timestamp)
        ident = str(value["id"])
        return self._prediction(ident, at, value), self._prediction(ident, at, value["production"])

    def _prediction(self, ident: str, at: int, body: dict[str, Any]) -> Prediction:
        version = int(body["model"]["version"])
        return Prediction(
            ident,
            version,
            at,
            body["prediction"],
            body.get("probabilities"),
            self.task_of(version, body),
        )

    def apply(self, batch: ShadowBatch, labels: Sequence[Label]) -> set[tuple[str, int, int]]:
        """Both states, each in its transaction; the (state, version, window) keys touched."""
        touched: set[tuple[str, int, int]] = set()
        for name, state, predictions in (
            ("shadow", self.shadow, batch.shadow),
            ("paired", self.production, batch.production),
        ):
            if not predictions and not labels and not batch.offsets:
                continue
            result = state.apply(predictions, labels, batch.offsets)
            touched |= {(name, v, w) for v, w in result.windows}
        return touched

    def expire(self, now_ms: int) -> None:
        self.shadow.expire(now_ms)
        self.production.expire(now_ms)

    def close(self) -> None:
        self.shadow.close()
        self.production.close()

    def cumulative(self) -> Mapping[str, dict[str, dict[str, Any]]]:
        """Cumulative metrics by version: the shadow's, production's on the shadowed ids."""
        return {
            "shadow": {str(v): self.shadow.cumulative(v).metrics() for v in self.shadow.versions()},
            "production_on_shadow_ids": {
                str(v): self.production.cumulative(v).metrics() for v in self.production.versions()
            },
        }
