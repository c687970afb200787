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
from streamscore.wire import InputRecord, OutRecord
from worker.records import SourceHeaders, dead_letter_headers, event_id, now_ms
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
        self.headers = SourceHeaders(self.name, self.version_text)

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
    matrix: Any = None  # the batch's feature matrix (valid events), for drift counting


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
) -> list[Outcome]:
    """Validate and score decoded events with one model call; one outcome per event.

    The stream and ``POST /predict`` both go through :func:`_score`, so a bad event gets the
    same message in a dead letter as in an HTTP 422.
    """
    bodies, failures, _ = _score(events, model, id_field, passthrough, None)
    outcomes = [Outcome(body) if body is not None else _NOT_SCORED for body in bodies]
    for index, stage, error_class, message in failures:
        outcomes[index] = Outcome(None, stage, error_class, message)
    return outcomes


_NOT_SCORED = Outcome(None, "predict", "Missing", "not scored")


def _score(
    events: Sequence[dict[str, Any]],
    model: ServingModel,
    id_field: str,
    passthrough: Sequence[str],
    sources: Sequence[InputRecord] | None,
) -> tuple[list[dict[str, Any] | None], list[tuple[int, str, str, str]], Any]:
    """Prediction bodies (None where an event did not score), the failures as
    ``(event index, stage, error class, message)`` in event order within each stage, and the
    feature matrix of the valid events."""
    bodies: list[dict[str, Any] | None] = [None] * len(events)
    failures: list[tuple[int, str, str, str]] = []
    built = model.builder.build(events)
    for index, reason in built.rejected:
        failures.append((index, "schema", "SchemaError", reason))
    scores = model.scorer.score(built.matrix)
    for matrix_row, error_class, message in scores.failed:
        failures.append((built.rows[matrix_row], "predict", error_class, message))
    scored_at = now_ms()
    model_ref = model.model_ref
    class_keys = model.scorer.class_keys
    proba = scores.probabilities
    proba_rows = proba.tolist() if proba is not None else None
    predictions = scores.predictions
    matrix_rows = built.rows
    all_rows = len(scores.rows) == len(events)  # the common case: every event scored
    for position, matrix_row in enumerate(scores.rows):
        index = matrix_row if all_rows else matrix_rows[matrix_row]
        event = events[index]
        ident = event.get(id_field)
        if ident is None:
            ident = event_id(event, id_field, sources[index]) if sources is not None else None
        if proba_rows is not None:
            body: dict[str, Any] = {
                "id": ident,
                "prediction": predictions[position],
                "probabilities": dict(zip(class_keys, proba_rows[position], strict=True)),
                "model": model_ref,
                "scored_at": scored_at,
            }
        else:
            body = {
                "id": ident,
                "prediction": predictions[position],
                "model": model_ref,
                "scored_at": scored_at,
            }
        for name in passthrough:
            if name in event:
                body[name] = event[name]
        bodies[index] = body
    return bodies, failures, built.matrix


class BatchProcessor:
    def __init__(self, destinations: Destinations) -> None:
        self.dest = destinations
        #: Publish each prediction to its event's partition number (the worker sets this when
        #: the input and output topics have the same partition count); otherwise the client's
        #: partitioner hashes the key.
        self.follow_partitions = False

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

        bodies, failures, result.matrix = _score(
            events, model, dest.id_field, dest.passthrough, decoded
        )
        for index, stage, error_class, message in failures:
            out.append(self._dead(decoded[index], model, stage, error_class, message))
            result.dead_letters[stage] += 1
        topic = dest.output_topic
        dumps = jsonio.dumps
        headers = model.headers
        same = self.follow_partitions
        predictions = result.predictions
        timestamps = result.timestamps_ms
        for body, record in zip(bodies, decoded, strict=True):
            if body is None:
                continue
            try:
                value = dumps(body)
            except Exception as exc:  # noqa: BLE001 - whatever one record's value raises
                # (e.g. an integer beyond 64 bits passed through): that record alone is dead.
                out.append(self._dead(record, model, "encode", type(exc).__name__, str(exc)))
                result.dead_letters["encode"] += 1
                continue
            out.append(
                OutRecord(
                    topic, record.key, value, headers(record), record.partition if same else None
                )
            )
            predictions.append(body["prediction"])
            timestamps.append(record.timestamp)
        result.scored = len(predictions)
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
    except Exception:  # noqa: BLE001 - ValueError, RecursionError (deep nesting), ...: undecodable
        return None
    if isinstance(event, dict) and any(
        isinstance(v, float) and not math.isfinite(v) for v in event.values()
    ):
        return event
    return None


__all__ = ["BatchProcessor", "BatchResult", "Destinations", "ServingModel"]
