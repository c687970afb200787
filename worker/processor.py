"""Turn one batch of consumed records into predictions and dead letters. No Kafka here.

``BatchProcessor.process`` is the whole scoring path of a batch: decode each value, validate it
against the serving model's schema, build one matrix, call the model once (bisecting on
failure), and serialise the outputs. The caller publishes them and commits.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from model_store import LoadedModel
from streamscore import jsonio
from worker.records import (
    InputRecord,
    OutRecord,
    dead_letter_headers,
    event_id,
    now_ms,
    source_headers,
)
from worker.scoring import Scorer
from worker.validation import FeatureMatrixBuilder, ValidationPolicy


@dataclass(frozen=True)
class Destinations:
    output_topic: str
    dead_letter_topic: str
    group: str
    worker_id: str
    id_field: str = "id"
    passthrough: tuple[str, ...] = ()


class ServingModel:
    """A verified model plus everything compiled for it: schema validator and scorer."""

    def __init__(
        self,
        loaded: LoadedModel,
        policy: ValidationPolicy,
        *,
        alias: str,
        seq: int,
        allowed_extra: Sequence[str] = (),
    ) -> None:
        self.loaded = loaded
        self.manifest = loaded.manifest
        self.alias = alias
        self.seq = seq
        self.name = loaded.manifest.name
        self.version = loaded.manifest.version
        self.version_text = str(loaded.manifest.version)
        self.label = f"{self.name} v{self.version}"
        self.builder = FeatureMatrixBuilder(
            loaded.manifest.features, policy, model_label=self.label, allowed_extra=allowed_extra
        )
        self.scorer = Scorer(loaded)
        self.model_ref = {"name": self.name, "version": self.version}

    def smoke_test(self) -> None:
        """Predict one row of schema defaults; raises if the model cannot score at all."""
        scores = self.scorer.score(self.builder.row_from_defaults())
        if scores.failed:
            _, cls, message = scores.failed[0]
            raise RuntimeError(f"{cls}: {message}")


@dataclass
class BatchResult:
    records: list[OutRecord]
    scored: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # by stage
    predictions: list[Any] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)  # Kafka timestamps of scored inputs


@dataclass(frozen=True)
class Outcome:
    """One event's result: a prediction ``body``, or the dead-letter stage and reason."""

    body: dict[str, Any] | None
    stage: str = ""
    error_class: str = ""
    message: str = ""


def score_events(
    events: Sequence[dict[str, Any]],
    model: ServingModel,
    id_field: str,
    passthrough: Sequence[str] = (),
    sources: Sequence[InputRecord] | None = None,
) -> list[Outcome]:
    """Validate and score decoded events with one model call; one outcome per event.

    The stream and ``POST /predict`` both go through here, so a bad event gets the same
    message in a dead letter as in an HTTP 422.
    """
    outcomes: list[Outcome | None] = [None] * len(events)
    built = model.builder.build(events)
    for index, reason in built.rejected:
        outcomes[index] = Outcome(None, "schema", "SchemaError", reason)
    scores = model.scorer.score(built.matrix)
    for matrix_row, error_class, message in scores.failed:
        outcomes[built.rows[matrix_row]] = Outcome(None, "predict", error_class, message)
    scored_at = now_ms()
    model_ref = model.model_ref
    class_keys = model.scorer.class_keys
    proba = scores.probabilities
    proba_rows = proba.tolist() if proba is not None else None
    for position, matrix_row in enumerate(scores.rows):
        index = built.rows[matrix_row]
        event = events[index]
        if sources is not None:
            ident = event_id(event, id_field, sources[index])
        else:
            ident = event.get(id_field)
        body: dict[str, Any] = {"id": ident, "prediction": scores.predictions[position]}
        if proba_rows is not None:
            body["probabilities"] = dict(zip(class_keys, proba_rows[position], strict=True))
        body["model"] = model_ref
        body["scored_at"] = scored_at
        for name in passthrough:
            if name in event:
                body[name] = event[name]
        outcomes[index] = Outcome(body)
    return [
        o if o is not None else Outcome(None, "predict", "Missing", "not scored") for o in outcomes
    ]


class BatchProcessor:
    def __init__(self, destinations: Destinations) -> None:
        self.dest = destinations

    def process(self, records: Sequence[InputRecord], model: ServingModel) -> BatchResult:
        dest = self.dest
        result = BatchResult(records=[])
        out = result.records
        loads = jsonio.loads
        events: list[Any] = []
        decoded: list[InputRecord] = []
        for record in records:
            try:
                event = loads(record.value) if record.value is not None else None
            except jsonio.JSONDecodeError as exc:
                event = _lenient_decode(record.value)
                if event is None:
                    out.append(self._dead(record, model, "decode", "JSONDecodeError", str(exc)))
                    result.dead_letters["decode"] += 1
                    continue
            if not isinstance(event, dict):
                kind = "null" if event is None else f"a JSON {type(event).__name__}"
                if isinstance(event, list):
                    kind = "a JSON array"
                out.append(
                    self._dead(
                        record,
                        model,
                        "decode",
                        "NotAnObject",
                        f"expected a JSON object with the model's features, got {kind}",
                    )
                )
                result.dead_letters["decode"] += 1
                continue
            events.append(event)
            decoded.append(record)

        outcomes = score_events(events, model, dest.id_field, dest.passthrough, decoded)
        topic = dest.output_topic
        dumps = jsonio.dumps
        for outcome, record in zip(outcomes, decoded, strict=True):
            if outcome.body is None:
                out.append(
                    self._dead(record, model, outcome.stage, outcome.error_class, outcome.message)
                )
                result.dead_letters[outcome.stage] += 1
                continue
            out.append(
                OutRecord(
                    topic,
                    record.key,
                    dumps(outcome.body),
                    source_headers(record, model.name, model.version_text),
                )
            )
            result.predictions.append(outcome.body["prediction"])
            result.timestamps_ms.append(record.timestamp)
            result.scored += 1
        return result

    def _dead(
        self, record: InputRecord, model: ServingModel, stage: str, error_class: str, message: str
    ) -> OutRecord:
        dest = self.dest
        return OutRecord(
            dest.dead_letter_topic,
            record.key,
            record.value if record.value is not None else b"",
            dead_letter_headers(
                record,
                stage=stage,
                error_class=error_class,
                message=message,
                group=dest.group,
                worker_id=dest.worker_id,
                model_name=model.name,
                model_version=model.version_text,
            ),
        )


def _lenient_decode(value: bytes | None) -> Any:
    """Second chance for JSON that orjson refuses only for NaN/Infinity tokens.

    Python's ``json.dumps`` writes ``NaN`` for missing floats; such events should reach the
    schema stage (and its ``non_finite`` policy) instead of failing as undecodable.
    """
    if not value or (b"NaN" not in value and b"Infinity" not in value):
        return None
    try:
        event = json.loads(value)
    except ValueError:
        return None
    if isinstance(event, dict) and any(
        isinstance(v, float) and not math.isfinite(v) for v in event.values()
    ):
        return event
    return None


__all__ = ["BatchProcessor", "BatchResult", "Destinations", "ServingModel"]
