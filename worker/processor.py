"""Turn one batch of consumed records into predictions and dead letters. No Kafka here.

``BatchProcessor.process`` is the whole scoring path of a batch: decode each value, validate it
against the serving model's schema, build one matrix, call the model once (bisecting on
failure), and serialise the outputs. The caller publishes them and commits.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_store import LoadedModel
from streamscore import jsonio
from streamscore.wire import InputRecord, OutRecord
from worker.records import (
    SourceHeaders,
    dead_letter_headers,
    event_id,
    fallback_headers,
    now_ms,
)
from worker.sampling import in_canary
from worker.scoring import Scorer
from worker.sizes import fitted_dead_letter, record_size
from worker.validation import BuiltBatch, FeatureMatrixBuilder, ValidationPolicy


@dataclass(frozen=True)
class Destinations:
    output_topic: str
    dead_letter_topic: str
    group: str
    worker_id: str
    id_field: str = "id"
    passthrough: tuple[str, ...] = ()
    max_message_bytes: int = 1_048_576  # [worker] max_message_bytes


log = logging.getLogger(__name__)


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

    def same_input(self, other: ServingModel) -> bool:
        """True when ``other`` builds the same matrix from the same events (same feature
        schema and validation): a shadow of such a model reuses the batch's matrix."""
        return (
            self.manifest.features == other.manifest.features
            and self.builder.policy == other.builder.policy
            and self.builder.allowed_keys == other.builder.allowed_keys
        )

    def smoke_test(self) -> None:
        """Predict one row of schema defaults; raises if the model cannot score at all."""
        scores = self.scorer.score(self.builder.row_from_defaults())
        if scores.failed:
            _, cls, message = scores.failed[0]
            raise RuntimeError(f"{cls}: {message}")


@dataclass(frozen=True)
class ScoredRows:
    """What production's one model call saw and returned, kept for a shadow to compare with:
    the matrix of the valid events, the event index of each matrix row, and the scored rows
    with their predictions (and class probabilities, for classifiers)."""

    matrix: Any
    event_of_row: list[int]
    rows: list[int]  # matrix rows that scored, ascending
    predictions: list[Any]
    probabilities: Any  # (len(rows), n_classes) or None


@dataclass(frozen=True)
class Canary:
    """The canary model and the share of event ids it scores instead of production (the ids
    :func:`worker.sampling.in_canary` picks)."""

    model: ServingModel
    fraction: float


@dataclass
class BatchResult:
    records: list[OutRecord]
    scored: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # by stage
    predictions: list[Any] = field(default_factory=list)  # production's, published
    timestamps_ms: list[int] = field(default_factory=list)  # Kafka timestamps of scored inputs
    matrix: Any = None  # the batch's feature matrix (valid events), for drift counting
    #: The decoded events and their records, production's prediction bodies (None: not
    #: scored by production) and its model call: what a shadow scores again and compares with.
    #: Empty when the batch was handled record by record.
    events: list[Any] = field(default_factory=list)
    decoded: list[InputRecord] = field(default_factory=list)
    bodies: list[dict[str, Any] | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)  # production's published values
    production: ScoredRows | None = None
    canary_predictions: list[Any] = field(default_factory=list)  # the canary's, published


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
) -> tuple[list[dict[str, Any] | None], list[tuple[int, str, str, str]], ScoredRows]:
    """Prediction bodies (None where an event did not score), the failures as
    ``(event index, stage, error class, message)`` in event order within each stage, and the
    model call (the feature matrix of the valid events, what scored)."""
    bodies: list[dict[str, Any] | None] = [None] * len(events)
    failures: list[tuple[int, str, str, str]] = []
    built, raised = _build(model.builder, events)
    failures.extend(raised)
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
    return (
        bodies,
        failures,
        ScoredRows(built.matrix, built.rows, scores.rows, predictions, proba),
    )


def _score_split(
    events: Sequence[dict[str, Any]],
    model: ServingModel,
    canary: Canary,
    id_field: str,
    passthrough: Sequence[str],
    sources: Sequence[InputRecord],
) -> tuple[
    list[dict[str, Any] | None], list[tuple[int, str, str, str]], ScoredRows, list[bool], list[Any]
]:
    """:func:`_score` with the canary's share of the ids scored by the canary: the bodies
    and failures of both (by event index), production's model call, which events the canary
    scored, and the canary's predictions."""
    ours: list[int] = []
    theirs: list[int] = []
    fraction = canary.fraction
    for index, event in enumerate(events):
        ident = event_id(event, id_field, sources[index])
        (theirs if in_canary(ident, fraction) else ours).append(index)
    bodies: list[dict[str, Any] | None] = [None] * len(events)
    failures: list[tuple[int, str, str, str]] = []
    by_canary = [False] * len(events)
    canary_predictions: list[Any] = []
    scored = ScoredRows(None, [], [], [], None)
    for indices, serving in ((ours, model), (theirs, canary.model)):
        if not indices:
            continue
        part_bodies, part_failures, part = _score(
            [events[i] for i in indices],
            serving,
            id_field,
            passthrough,
            [sources[i] for i in indices],
        )
        for position, body in enumerate(part_bodies):
            bodies[indices[position]] = body
        failures.extend((indices[i], st, cls, msg) for i, st, cls, msg in part_failures)
        if serving is model:
            scored = ScoredRows(
                part.matrix,
                [indices[i] for i in part.event_of_row],
                part.rows,
                part.predictions,
                part.probabilities,
            )
        else:
            canary_predictions = part.predictions
            for i in indices:
                by_canary[i] = True
    return bodies, failures, scored, by_canary, canary_predictions


def _build(
    builder: FeatureMatrixBuilder, events: Sequence[dict[str, Any]]
) -> tuple[BuiltBatch, list[tuple[int, str, str, str]]]:
    """The batch's matrix, built at once; when that raises (a value no rule foresaw, e.g. an
    integer too large for a float), event by event: those that raise alone are ``schema``
    failures, the matrix is built of the others."""
    try:
        return builder.build(events), []
    except Exception as exc:  # noqa: BLE001 - found below, event by event
        log.info("building a matrix of %d events raised %r; event by event", len(events), exc)
    kept: list[int] = []
    raised: list[tuple[int, str, str, str]] = []
    for index, event in enumerate(events):
        try:
            builder.build([event])
        except Exception as exc:  # noqa: BLE001 - this event alone raises: a dead letter
            raised.append((index, "schema", type(exc).__name__, _short(exc)))
            continue
        kept.append(index)
    built = builder.build([events[i] for i in kept])
    return (
        BuiltBatch(
            built.matrix,
            [kept[row] for row in built.rows],
            [(kept[index], reason) for index, reason in built.rejected],
        ),
        raised,
    )


class _Stage:
    """Where a record is on the scoring path; named in its dead letter if it raises there."""

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = "decode"


class BatchProcessor:
    """Scores batches; no record's content makes :meth:`process` raise (see its docstring)."""

    def __init__(self, destinations: Destinations) -> None:
        self.dest = destinations
        #: Publish each prediction to its event's partition number (the worker sets this when
        #: the input and output topics have the same partition count); otherwise the client's
        #: partitioner hashes the key.
        self.follow_partitions = False
        self.max_message_bytes = destinations.max_message_bytes
        #: Below this, key + value cannot make a prediction too large (headers are bounded).
        self._check_above = destinations.max_message_bytes // 2

    def process(
        self,
        records: Sequence[InputRecord],
        model: ServingModel,
        canary: Canary | None = None,
    ) -> BatchResult:
        """Predictions and dead letters of ``records``, in their order.

        With a ``canary``, the events whose id falls in its share are scored by the canary
        instead (their predictions and dead letters carry its version); the others by
        ``model``, one model call each.

        The batch is handled as one (one matrix, one model call, bisected when the model
        raises). Whatever else raises while handling it, the batch is handled again record by
        record: a record that raises alone becomes a dead letter naming the stage it reached
        (``decode``, ``schema``, ``predict``, ``encode``, ``publish``), and the others are
        scored. Nothing a record holds escapes this method.
        """
        try:
            return self._process(records, model, _Stage(), canary)
        except Exception as exc:  # noqa: BLE001 - whatever a record makes raise: isolate it
            log.warning(
                "a batch of %d records raised %s (%s); handling it record by record",
                len(records),
                type(exc).__name__,
                _short(exc),
            )
            return self._process_each(records, model, canary)

    def _process_each(
        self, records: Sequence[InputRecord], model: ServingModel, canary: Canary | None
    ) -> BatchResult:
        result = BatchResult(records=[])
        matrices = []
        for record in records:
            stage = _Stage()
            try:
                one = self._process([record], model, stage, canary)
            except Exception as exc:  # noqa: BLE001 - this record alone raised: a dead letter
                result.records.append(
                    self._dead(record, model, stage.name, type(exc).__name__, _short(exc))
                )
                result.dead_letters[stage.name] += 1
                continue
            result.records.extend(one.records)
            result.scored += one.scored
            result.dead_letters.update(one.dead_letters)
            result.predictions.extend(one.predictions)
            result.canary_predictions.extend(one.canary_predictions)
            result.timestamps_ms.extend(one.timestamps_ms)
            if one.matrix is not None and len(one.matrix):
                matrices.append(one.matrix)
        result.matrix = _stacked(matrices)
        return result

    def _process(
        self,
        records: Sequence[InputRecord],
        model: ServingModel,
        stage: _Stage,
        canary: Canary | None = None,
    ) -> BatchResult:
        dest = self.dest
        result = BatchResult(records=[])
        out = result.records
        loads = jsonio.loads
        events: list[Any] = []
        decoded: list[InputRecord] = []
        stage.name = "decode"
        for record in records:
            value = record.value
            if value is None:
                out.append(
                    self._dead(
                        record,
                        model,
                        "decode",
                        "Tombstone",
                        "a tombstone (null value); expected a JSON object with the model's "
                        "features",
                    )
                )
                result.dead_letters["decode"] += 1
                continue
            try:
                event = loads(value)
            except Exception as exc:  # noqa: BLE001 - JSONDecodeError, or whatever else
                event = _lenient_decode(value)
                if event is None:
                    out.append(self._dead(record, model, "decode", type(exc).__name__, str(exc)))
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

        stage.name = "schema"  # predict failures are caught by the scorer's bisection
        by_canary: list[bool] | None = None
        if canary is None:
            bodies, failures, scored = _score(
                events, model, dest.id_field, dest.passthrough, decoded
            )
        else:
            bodies, failures, scored, by_canary, _ = _score_split(
                events, model, canary, dest.id_field, dest.passthrough, decoded
            )
        result.matrix = scored.matrix
        result.events, result.decoded, result.bodies = events, decoded, bodies
        result.production = scored
        for index, failed_stage, error_class, message in failures:
            owner = model
            if canary is not None and by_canary is not None and by_canary[index]:
                owner = canary.model
            out.append(self._dead(decoded[index], owner, failed_stage, error_class, message))
            result.dead_letters[failed_stage] += 1
        stage.name = "encode"
        topic = dest.output_topic
        dumps = jsonio.dumps
        headers = model.headers
        same = self.follow_partitions
        check_above = self._check_above
        predictions = result.predictions
        timestamps = result.timestamps_ms
        canary_headers = canary.model.headers if canary is not None else headers
        canary_published: list[Any] = []
        values: list[bytes | None] = [None] * len(decoded)
        result.values = values
        for index, (body, record) in enumerate(zip(bodies, decoded, strict=True)):
            if body is None:
                continue
            owner = model
            if by_canary is not None and by_canary[index]:
                owner = canary.model if canary is not None else model
            try:
                value = dumps(body)
            except Exception as exc:  # noqa: BLE001 - whatever one record's value raises
                # (e.g. an integer beyond 64 bits passed through): that record alone is dead.
                out.append(self._dead(record, owner, "encode", type(exc).__name__, str(exc)))
                result.dead_letters["encode"] += 1
                continue
            key = record.key
            prediction = OutRecord(
                topic,
                key,
                value,
                (headers if owner is model else canary_headers)(record),
                record.partition if same else None,
            )
            if len(value) + (len(key) if key else 0) > check_above:
                size = record_size(prediction)
                if size > self.max_message_bytes:
                    out.append(self.too_large(record, owner, "prediction", size))
                    result.dead_letters["publish"] += 1
                    continue
            out.append(prediction)
            if owner is model:
                predictions.append(body["prediction"])
                values[index] = value
            else:
                canary_published.append(body["prediction"])
            timestamps.append(record.timestamp)
        if canary is not None:
            result.canary_predictions = canary_published
        result.scored = len(timestamps)
        return result

    def too_large(
        self, record: InputRecord, model: ServingModel, what: str, size: int
    ) -> OutRecord:
        """The ``publish`` dead letter of ``record``, whose ``what`` (its prediction) weighs
        ``size`` bytes, over ``[worker] max_message_bytes``: it is not produced."""
        return self._dead(
            record,
            model,
            "publish",
            "MessageTooLarge",
            f"the {what} is {size} bytes, over [worker] max_message_bytes = "
            f"{self.max_message_bytes}: raise it (with the brokers' message.max.bytes) or send "
            f"smaller events (passthrough fields are copied into the prediction)",
        )

    def refused(
        self, record: InputRecord, model: ServingModel, what: str, reason: str
    ) -> OutRecord:
        """The ``publish`` dead letter of ``record``, whose ``what`` the broker refused for
        good (a record too large for the topic, say): it is not retried. When ``what`` was
        already its dead letter, this one carries none of the value (its length and source
        say where to read it)."""
        return self._dead(
            record,
            model,
            "publish",
            "Refused",
            f"the broker refused the {what} for good ({reason[:1000]}); it is not retried",
            limit=0 if what == "dead letter" else None,
        )

    def _dead(
        self,
        record: InputRecord,
        model: ServingModel,
        stage: str,
        error_class: str,
        message: str,
        *,
        limit: int | None = None,
    ) -> OutRecord:
        dest = self.dest
        try:
            headers = dead_letter_headers(
                record,
                stage=stage,
                error_class=error_class,
                message=message,
                group=dest.group,
                worker_id=dest.worker_id,
                model_name=model.name,
                model_version=model.version_text,
            )
        except Exception as exc:  # noqa: BLE001 - a record whose fields cannot be written
            headers = fallback_headers(record, stage, error_class, f"{message} ({exc!r})")
        key = record.key if isinstance(record.key, bytes) else None
        value = record.value if isinstance(record.value, bytes) or record.value is None else b""
        fit = self.max_message_bytes if limit is None else limit
        return fitted_dead_letter(dest.dead_letter_topic, key, value, headers, fit)


def _short(exc: BaseException) -> str:
    return (str(exc) or repr(exc))[:500]


def _stacked(matrices: list[Any]) -> Any:
    """One matrix of the per-record matrices (None when they do not stack)."""
    if not matrices:
        return None
    try:
        return np.vstack(matrices)
    except Exception:  # noqa: BLE001 - drift counting skips such a batch
        return None


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


__all__ = ["BatchProcessor", "BatchResult", "Canary", "Destinations", "ScoredRows", "ServingModel"]
