"""Prometheus metrics of one worker process, in their own registry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from worker.records import now_ms

if TYPE_CHECKING:
    from worker.processor import BatchResult, ServingModel
    from worker.transport import Partition, Transport

BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class WorkerMetrics:
    """Everything a worker exports; labelled by model version so two versions compare."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_scored = Counter(
            "streamscore_events_scored_total",
            "Events scored and published",
            ["model_version"],
            registry=r,
        )
        self.dead_letters = Counter(
            "streamscore_dead_letters_total",
            "Events sent to the dead-letter topic, by stage (decode, schema, predict)",
            ["stage", "model_version"],
            registry=r,
        )
        self.side_step_failures = Counter(
            "streamscore_side_step_failures_total",
            "Batches whose optional side output (drift counts, shadow records, the dead "
            "letters replacing refused outputs) failed and was skipped; the batch itself was "
            "published and committed",
            ["step"],
            registry=r,
        )
        self.batch_size = Histogram(
            "streamscore_batch_size", "Events per scored batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.scoring_seconds = Histogram(
            "streamscore_scoring_seconds",
            "Time to decode, validate and score one batch",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "streamscore_end_to_end_seconds",
            "Event Kafka timestamp to its prediction being acknowledged",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "streamscore_consumer_lag",
            "Events behind the fetch high watermark, per assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.model_loads = Counter(
            "streamscore_model_loads_total",
            "Model versions loaded or refused",
            ["outcome"],
            registry=r,
        )
        self.feature_drift = Gauge(
            "streamscore_feature_drift",
            "Drift of a feature against the version's reference profile over this worker's "
            "window (PSI numeric, Jensen-Shannon distance categorical)",
            ["feature", "model_version"],
            registry=r,
        )
        self.prediction_drift = Gauge(
            "streamscore_prediction_drift",
            "Drift of this worker's predictions against the held-out ones",
            ["model_version"],
            registry=r,
        )
        self.model_info = Gauge(
            "streamscore_model_info",
            "The serving model (value 1)",
            ["name", "version", "alias"],
            registry=r,
        )
        self.predictions = Counter(
            "streamscore_predictions_total",
            "Predicted class counts (classifiers)",
            ["model_version", "label"],
            registry=r,
        )
        self.prediction_values = Histogram(
            "streamscore_prediction_value",
            "Predicted values (regressors)",
            ["model_version"],
            buckets=(-100, -10, -1, 0, 1, 10, 100, 1000, 10000),
            registry=r,
        )
        self.partitions_assigned = Gauge(
            "streamscore_partitions_assigned", "Partitions this worker owns", registry=r
        )

    def drift(self, version: int, report: Any) -> None:
        """This worker's drift over its window (a :class:`monitor.drift.DriftReport`)."""
        for score in report.scores:
            if score.value is None:
                continue
            if score.column == "__predictions__":
                self.prediction_drift.labels(model_version=str(version)).set(score.value)
            else:
                self.feature_drift.labels(feature=score.column, model_version=str(version)).set(
                    score.value
                )

    def serving(self, name: str, version: int, alias: str) -> None:
        self.model_info.clear()
        self.model_info.labels(name=name, version=str(version), alias=alias).set(1)

    def record_canary(self, canary: ServingModel, result: BatchResult) -> None:
        """The canary's share of a handled batch, under its own version."""
        if result.canary_predictions:
            version = canary.version_text
            self.events_scored.labels(model_version=version).inc(len(result.canary_predictions))
            self.record_predictions(version, canary.scorer.is_classifier, result.canary_predictions)

    def record_batch(self, model: ServingModel, size: int, result: BatchResult) -> int:
        """Count one handled batch of ``size`` records; returns its dead letters."""
        version = model.version_text
        self.batch_size.observe(size)
        if result.scored:
            ours = result.scored - len(result.canary_predictions)
            if ours:
                self.events_scored.labels(model_version=version).inc(ours)
            self.record_predictions(version, model.scorer.is_classifier, result.predictions)
            now = now_ms()
            hist = self.end_to_end_seconds
            for ts in result.timestamps_ms:
                hist.observe(max(now - ts, 0) / 1000)
        dead = 0
        for stage, n in result.dead_letters.items():
            self.dead_letters.labels(stage=stage, model_version=version).inc(n)
            dead += n
        return dead

    def record_lag(self, transport: Transport, assigned: Iterable[Partition]) -> None:
        """Events behind the high watermark for each partition in ``assigned``."""
        for topic, partition in assigned:
            high = transport.highwater(topic, partition)
            position = transport.position(topic, partition)
            if high is not None and position is not None:
                self.consumer_lag.labels(topic=topic, partition=str(partition)).set(
                    max(high - position, 0)
                )

    def record_predictions(self, version: str, classifier: bool, values: Sequence[Any]) -> None:
        if classifier:
            counts: dict[str, int] = {}
            for value in values:
                key = str(value)
                counts[key] = counts.get(key, 0) + 1
            for label, n in counts.items():
                self.predictions.labels(model_version=version, label=label).inc(n)
        else:
            hist = self.prediction_values.labels(model_version=version)
            for value in values:
                hist.observe(float(value))
