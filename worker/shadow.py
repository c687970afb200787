"""Shadow and canary scoring inside the batch (``[worker] shadow_alias``, ``canary_alias``).

:class:`Candidates` follows the shadow and canary aliases with reloaders of their own (loaded,
verified, smoke-tested and swapped between batches exactly as production is, see
:mod:`worker.reloader`), and is called from one place in the worker's batch handling:

- before scoring, :meth:`Candidates.canary_for` gives the processor the canary and its share of
  ids (:mod:`worker.sampling`): those events are scored by the canary instead of production and
  published on the output topic with the canary's version;
- after scoring, :meth:`Candidates.shadow_batch` scores the shadow's share of the ids again with
  the shadow (:class:`ShadowScorer`) and appends its predictions, for ``[kafka] shadow_topic``
  only, to the batch's outgoing records: they are acknowledged with the batch, before its
  offsets are committed.

The shadow reuses the batch's decoded and validated events, and production's matrix when its
feature schema is the same (``ServingModel.same_input``): a 100 % shadow of the same model class
costs its model call, not a second decoding and validation. It never changes or delays
production's output: it scores only events production scored, a batch whose shadow raises is
skipped (``failed``), and it scores at most as many rows as its measured cost per row fits in
``[worker] shadow_budget_ms`` (a version's first batch is a probe of ``PROBE_ROWS``); the rest
are skipped (``budget``). Everything skipped is counted by reason.

The shadow's predictions of a batch go out by column in one record (:class:`ShadowColumns`;
more only when ``max_message_bytes`` needs), with production's predictions of the same events
beside them, so the monitor compares both on the same ids from the shadow topic alone; one
record per batch, because a second record per event cost kafka-python's producer as much as
the prediction. Metrics by version pair: agreement and mean absolute probability difference
(classifiers), MAE between the two (regressors), scoring time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from model_store import ModelStore
from streamscore import jsonio
from streamscore.config import Config
from streamscore.wire import H_MODEL_NAME, H_MODEL_VERSION, OutRecord
from worker.processor import BatchResult, Canary, ScoredRows, ServingModel
from worker.records import now_ms
from worker.reloader import ModelReloader, ReloadEvent
from worker.sampling import in_shadow
from worker.swap import swap_between_batches
from worker.validation import ValidationPolicy

log = logging.getLogger(__name__)

#: Rows a shadow version scores in its first batch, before its cost per row is known.
PROBE_ROWS = 32
#: Weight of the latest batch in the shadow's mean cost per row.
_ALPHA = 0.3
#: Room for a record's headers and framing under ``max_message_bytes``.
_RECORD_MARGIN = 1024
SHADOW_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class ShadowMetrics:
    """The shadow's Prometheus series, in the worker's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        pair = ["production_version", "shadow_version"]
        self.scored = Counter(
            "streamscore_shadow_scored_total",
            "Events the shadow scored (published to the shadow topic), by version pair",
            pair,
            registry=r,
        )
        self.skipped = Counter(
            "streamscore_shadow_skipped_total",
            "Sampled events the shadow did not score, by reason (budget, failed, schema, "
            "too_large, unpublished)",
            ["shadow_version", "reason"],
            registry=r,
        )
        self.agreed = Counter(
            "streamscore_shadow_agreed_total",
            "Events where shadow and production predicted the same class (classifiers)",
            pair,
            registry=r,
        )
        self.agreement = Gauge(
            "streamscore_shadow_agreement",
            "Share of the shadow's events where it predicted production's class, since start",
            pair,
            registry=r,
        )
        self.probability_diff = Gauge(
            "streamscore_shadow_probability_diff",
            "Mean absolute difference of the class probabilities, shadow vs production",
            pair,
            registry=r,
        )
        self.mae = Gauge(
            "streamscore_shadow_mae",
            "Mean absolute difference of the predicted values, shadow vs production (regressors)",
            pair,
            registry=r,
        )
        self.seconds = Histogram(
            "streamscore_shadow_scoring_seconds",
            "The shadow's scoring time in one batch (its matrix, if its own, and model call)",
            ["shadow_version"],
            buckets=SHADOW_BUCKETS,
            registry=r,
        )


@dataclass
class PairTally:
    """Shadow vs production since the worker started, for one version pair."""

    production_version: int
    shadow_version: int
    scored: int = 0
    agreed: int = 0
    probability_diff_sum: float = 0.0
    probability_rows: int = 0
    abs_error_sum: float = 0.0
    value_rows: int = 0

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.scored if self.scored and self.value_rows == 0 else None

    @property
    def probability_diff(self) -> float | None:
        return self.probability_diff_sum / self.probability_rows if self.probability_rows else None

    @property
    def mae(self) -> float | None:
        return self.abs_error_sum / self.value_rows if self.value_rows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "production_version": self.production_version,
            "shadow_version": self.shadow_version,
            "scored": self.scored,
            "agreement": _rounded(self.agreement),
            "probability_diff": _rounded(self.probability_diff),
            "mae": _rounded(self.mae),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass
class ShadowColumns:
    """The shadow's predictions of one batch beside production's, published by column: one
    record holds many events (``ids``, ``predictions``, ``probabilities``, and the same of
    production under ``"production"``), split into as many records as ``max_message_bytes``
    needs. One record per batch, not per event: a producer's cost per record (kafka-python
    encodes each in Python) made a second record per event dearer than the shadow's model call.
    """

    shadow: ServingModel
    production: ServingModel
    ids: list[Any]
    theirs: list[Any]
    ours: list[Any]
    theirs_proba: Any  # (rows, classes) or None
    ours_proba: Any
    scored_at: int

    @classmethod
    def joined(cls, parts: Sequence[ShadowColumns]) -> ShadowColumns:
        """The chunks of one batch (same models) as one."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]

        def stacked(matrices: list[Any]) -> Any:
            return None if matrices[0] is None else np.vstack(matrices)

        return cls(
            shadow=first.shadow,
            production=first.production,
            ids=[i for p in parts for i in p.ids],
            theirs=[v for p in parts for v in p.theirs],
            ours=[v for p in parts for v in p.ours],
            theirs_proba=stacked([p.theirs_proba for p in parts]),
            ours_proba=stacked([p.ours_proba for p in parts]),
            scored_at=first.scored_at,
        )

    def records(self, topic: str, limit: int) -> tuple[list[OutRecord], int]:
        """The records, and how many events fitted in none (an id too large on its own)."""
        headers = [
            (H_MODEL_NAME, self.shadow.name.encode()),
            (H_MODEL_VERSION, self.shadow.version_text.encode()),
        ]
        out: list[OutRecord] = []
        too_large = 0
        spans = [(0, len(self.ids))] if self.ids else []
        while spans:
            lo, hi = spans.pop()
            value = self.value(lo, hi)
            if len(value) + _RECORD_MARGIN <= limit:
                out.append(OutRecord(topic, None, value, headers))
            elif hi - lo > 1:
                mid = (lo + hi) // 2
                spans += [(mid, hi), (lo, mid)]
            else:
                too_large += 1
        return out, too_large

    def value(self, lo: int, hi: int) -> bytes:
        shadow, production = self.shadow, self.production
        body: dict[str, Any] = {
            "model": shadow.model_ref,
            "scored_at": self.scored_at,
            "ids": self.ids[lo:hi],
            "predictions": self.theirs[lo:hi],
        }
        if self.theirs_proba is not None:
            body["classes"] = shadow.scorer.class_keys
            body["probabilities"] = self.theirs_proba[lo:hi]
        ours: dict[str, Any] = {"model": production.model_ref, "predictions": self.ours[lo:hi]}
        if self.ours_proba is not None:
            ours["classes"] = production.scorer.class_keys
            ours["probabilities"] = self.ours_proba[lo:hi]
        body["production"] = ours
        return jsonio.dumps(body)


def _contiguous(matrix: Any) -> Any:
    """``matrix`` as a C-contiguous float array (what orjson encodes), None kept."""
    return None if matrix is None else np.ascontiguousarray(matrix, dtype=np.float64)


class ShadowScorer:
    """Scores the shadow's share of a scored batch; see the module docstring."""

    def __init__(
        self,
        topic: str,
        fraction: float,
        budget_ms: int,
        metrics: ShadowMetrics,
        *,
        max_message_bytes: int = 1_048_576,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.topic = topic
        self.fraction = fraction
        self.budget_s = budget_ms / 1000
        self.metrics = metrics
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        #: Seconds per row by shadow version (exponentially weighted mean).
        self.per_row_s: dict[int, float] = {}
        self.tallies: dict[tuple[int, int], PairTally] = {}
        self.skipped: dict[str, int] = {}
        self._failures_logged: set[int] = set()

    def score(
        self, shadow: ServingModel, production: ServingModel, result: BatchResult
    ) -> list[OutRecord]:
        """The shadow's predictions of the batch's sampled ids (never raises)."""
        scored = result.production
        if scored is None or not scored.rows or shadow.version == production.version:
            return []
        picked = self._sampled(scored, result)
        if not picked:
            return []
        parts: list[ShadowColumns] = []
        spent = 0.0
        start = 0
        while start < len(picked):
            fit = self._rows_that_fit(shadow.version, len(picked) - start, spent)
            if fit == 0:
                self._skip(shadow, "budget", len(picked) - start)
                break
            chunk = picked[start : start + fit]
            started = self.clock()
            part = self._score_chunk(shadow, production, result, scored, chunk)
            took = self.clock() - started
            spent += took
            if part is None:  # failed: counted; the rest of the batch is not tried
                self._skip(shadow, "failed", len(picked) - start - len(chunk))
                break
            self._observe(shadow.version, len(chunk), took)
            parts.append(part)
            start += fit
        if spent:
            self.metrics.seconds.labels(shadow_version=shadow.version_text).observe(spent)
        return self._publish(ShadowColumns.joined(parts)) if parts else []

    # ------------------------------------------------------------------ internals

    def _sampled(self, scored: ScoredRows, result: BatchResult) -> list[int]:
        """Positions (into ``scored.rows``) of the events whose id is in the shadow's share."""
        if self.fraction >= 1.0:
            return list(range(len(scored.rows)))
        bodies, event_of_row, fraction = result.bodies, scored.event_of_row, self.fraction
        picked = []
        for position, row in enumerate(scored.rows):
            body = bodies[event_of_row[row]]
            if body is not None and in_shadow(body["id"], fraction):
                picked.append(position)
        return picked

    def _rows_that_fit(self, version: int, wanted: int, spent_s: float) -> int:
        cost = self.per_row_s.get(version)
        if cost is None:
            return min(wanted, PROBE_ROWS)
        left = self.budget_s - spent_s
        if cost <= 0:
            return wanted
        return max(0, min(wanted, int(left / cost)))

    def _observe(self, version: int, rows: int, seconds: float) -> None:
        if rows <= 0:
            return
        cost = seconds / rows
        before = self.per_row_s.get(version)
        self.per_row_s[version] = cost if before is None else before + _ALPHA * (cost - before)

    def _skip(self, shadow: ServingModel, reason: str, n: int) -> None:
        if n <= 0:
            return
        self.metrics.skipped.labels(shadow_version=shadow.version_text, reason=reason).inc(n)
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def _score_chunk(
        self,
        shadow: ServingModel,
        production: ServingModel,
        result: BatchResult,
        scored: ScoredRows,
        chunk: Sequence[int],
    ) -> ShadowColumns | None:
        """Score ``chunk`` (positions into ``scored.rows``); None when the shadow raised."""
        try:
            matrix_rows = [scored.rows[p] for p in chunk]
            positions = list(chunk)
            if shadow.same_input(production):
                matrix = scored.matrix[matrix_rows]
            else:
                events = [result.events[scored.event_of_row[r]] for r in matrix_rows]
                built = shadow.builder.build(events)
                self._skip(shadow, "schema", len(built.rejected))
                positions = [positions[i] for i in built.rows]
                matrix = built.matrix
            scores = shadow.scorer.score_once(matrix)
        except Exception as exc:  # noqa: BLE001 - whatever the shadow raises: skip, count, log
            self._skip(shadow, "failed", len(chunk))
            if shadow.version not in self._failures_logged:
                self._failures_logged.add(shadow.version)
                log.warning(
                    "shadow %s failed on a batch of %d rows (%s: %s); its batches are skipped "
                    "and counted (streamscore_shadow_skipped_total), production is unaffected",
                    shadow.label,
                    len(chunk),
                    type(exc).__name__,
                    str(exc)[:300],
                )
            return None
        return self._records(shadow, production, result, scored, positions, scores)

    def _records(
        self,
        shadow: ServingModel,
        production: ServingModel,
        result: BatchResult,
        scored: ScoredRows,
        positions: list[int],
        scores: Any,
    ) -> ShadowColumns:
        """Compare with production (tallies, metrics) and keep the columns to publish."""
        key = (production.version, shadow.version)
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = PairTally(production.version, shadow.version)
        theirs = scores.predictions
        ours = [scored.predictions[p] for p in positions]
        proba = scores.probabilities
        classifier = shadow.scorer.is_classifier and production.scorer.is_classifier
        pair = {
            "production_version": production.version_text,
            "shadow_version": shadow.version_text,
        }
        m = self.metrics
        n = len(positions)
        if classifier:
            agreed = sum(1 for a, b in zip(ours, theirs, strict=True) if a == b)
            tally.agreed += agreed
            m.agreed.labels(**pair).inc(agreed)
            if (
                proba is not None
                and scored.probabilities is not None
                and shadow.scorer.class_keys == production.scorer.class_keys
            ):
                diff = np.abs(scored.probabilities[positions] - proba).mean(axis=1)
                tally.probability_diff_sum += float(diff.sum())
                tally.probability_rows += n
        else:
            errors = np.abs(
                np.asarray(ours, dtype=np.float64) - np.asarray(theirs, dtype=np.float64)
            )
            tally.abs_error_sum += float(errors.sum())
            tally.value_rows += n
        # records: the shadow's predictions with production's of the same events, by column
        bodies, event_of_row = result.bodies, scored.event_of_row
        published = result.values
        ids: list[Any] = []
        kept: list[int] = []  # into positions / theirs
        unpublished = 0
        for i, position in enumerate(positions):
            index = event_of_row[scored.rows[position]]
            ours_body = bodies[index]
            if published[index] is None or ours_body is None:  # production's not published
                unpublished += 1
                continue
            ids.append(ours_body["id"])
            kept.append(i)
        self._skip(shadow, "unpublished", unpublished)
        our_proba = None
        if scored.probabilities is not None:
            our_proba = scored.probabilities[[positions[i] for i in kept]]
        columns = ShadowColumns(
            shadow=shadow,
            production=production,
            ids=ids,
            theirs=[theirs[i] for i in kept],
            ours=[ours[i] for i in kept],
            theirs_proba=_contiguous(proba[kept] if proba is not None else None),
            ours_proba=_contiguous(our_proba),
            scored_at=now_ms(),
        )
        return columns

    def _publish(self, columns: ShadowColumns) -> list[OutRecord]:
        """The batch's records; the counts of what they hold."""
        shadow, production = columns.shadow, columns.production
        tally = self.tallies[(production.version, shadow.version)]
        out, too_large = columns.records(self.topic, self.max_message_bytes)
        self._skip(shadow, "too_large", too_large)
        published = len(columns.ids) - too_large
        tally.scored += published
        pair = {
            "production_version": production.version_text,
            "shadow_version": shadow.version_text,
        }
        m = self.metrics
        m.scored.labels(**pair).inc(published)
        if tally.agreement is not None:
            m.agreement.labels(**pair).set(tally.agreement)
        if tally.probability_diff is not None:
            m.probability_diff.labels(**pair).set(tally.probability_diff)
        if tally.mae is not None:
            m.mae.labels(**pair).set(tally.mae)
        return out


class Candidates:
    """The shadow and the canary of one worker: their reloaders, the models they serve now,
    the shadow scorer. Inactive parts (an alias left '') cost nothing."""

    def __init__(
        self,
        cfg: Config,
        store: ModelStore,
        registry: CollectorRegistry,
        *,
        on_event: Callable[[ReloadEvent], None] | None = None,
    ) -> None:
        w = cfg.worker
        self.cfg = cfg
        policy = ValidationPolicy.from_config(w)
        extra = (w.id_field, *w.passthrough)

        def reloader(alias: str) -> ModelReloader | None:
            if not alias:
                return None
            return ModelReloader(
                store,
                alias,
                policy,
                poll_ms=w.reload_poll_ms,
                allowed_extra=extra,
                on_event=on_event,
            )

        self.shadow_reloader = reloader(w.shadow_alias)
        self.canary_reloader = reloader(w.canary_alias)
        self.shadow: ServingModel | None = None
        self.canary: ServingModel | None = None
        self.canary_fraction = w.canary_fraction
        self.scorer = ShadowScorer(
            cfg.kafka.shadow_topic,
            w.shadow_fraction,
            w.shadow_budget_ms,
            ShadowMetrics(registry),
            max_message_bytes=w.max_message_bytes,
        )

    @property
    def reloaders(self) -> list[ModelReloader]:
        return [r for r in (self.shadow_reloader, self.canary_reloader) if r is not None]

    @property
    def aliases(self) -> list[str]:
        return [r.alias for r in self.reloaders]

    def start(self) -> None:
        w = self.cfg.worker
        if self.shadow_reloader is not None:
            log.info(
                "shadow: alias %r scores %.0f%% of the ids to %s (budget %d ms a batch)",
                w.shadow_alias,
                100 * w.shadow_fraction,
                self.cfg.kafka.shadow_topic,
                w.shadow_budget_ms,
            )
        if self.canary_reloader is not None:
            log.info(
                "canary: alias %r scores %.0f%% of the ids on the output topic",
                w.canary_alias,
                100 * w.canary_fraction,
            )
        for reloader in self.reloaders:
            reloader.start()

    def stop(self) -> None:
        for reloader in self.reloaders:
            reloader.stop()

    def wake(self, alias: str) -> None:
        for reloader in self.reloaders:
            if reloader.alias == alias:
                reloader.wake()

    def swap(self) -> None:
        """Between batches: take what the reloaders prepared (as production's swap)."""
        if self.shadow_reloader is not None:
            swapped = swap_between_batches(self.shadow_reloader, self.shadow)
            if swapped is not None:
                self.shadow = swapped
        if self.canary_reloader is not None:
            swapped = swap_between_batches(self.canary_reloader, self.canary)
            if swapped is not None:
                self.canary = swapped

    def canary_for(self, production: ServingModel) -> Canary | None:
        """The canary for the next batch; None when off or when it is production's version
        (the canary was ended by pointing its alias at production)."""
        canary = self.canary
        if canary is None or self.canary_fraction <= 0 or canary.version == production.version:
            return None
        return Canary(canary, self.canary_fraction)

    def shadow_batch(self, production: ServingModel, result: BatchResult) -> int:
        """Append the shadow's predictions of this batch to its outgoing records; returns
        how many."""
        shadow = self.shadow
        if shadow is None:
            return 0
        records = self.scorer.score(shadow, production, result)
        result.records.extend(records)
        return len(records)

    def status(self, production: ServingModel | None) -> dict[str, Any]:
        """What the status record, ``/status`` and the status page show of the candidates."""
        out: dict[str, Any] = {}
        shadow = self.shadow
        if self.shadow_reloader is not None:
            tally = None
            if shadow is not None and production is not None:
                tally = self.scorer.tallies.get((production.version, shadow.version))
            out["shadow"] = {
                "alias": self.shadow_reloader.alias,
                "version": shadow.version if shadow else None,
                "fraction": self.scorer.fraction,
                "topic": self.scorer.topic,
                "problem": self.shadow_reloader.last_problem,
                "skipped": dict(self.scorer.skipped),
                **(tally.to_dict() if tally else {}),
            }
        if self.canary_reloader is not None:
            canary = self.canary
            active = production is not None and self.canary_for(production) is not None
            out["canary"] = {
                "alias": self.canary_reloader.alias,
                "version": canary.version if canary else None,
                "fraction": self.canary_fraction if active else 0.0,
                "problem": self.canary_reloader.last_problem,
            }
        return out


__all__ = ["PROBE_ROWS", "Candidates", "PairTally", "ShadowMetrics", "ShadowScorer"]
