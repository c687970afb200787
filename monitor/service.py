"""``streamscore monitor``: join predictions with delayed labels, publish live quality per model
version, and roll production back when the rule in :mod:`monitor.rollback` says so.

One process, one thread of work:

1. Read the output (predictions) topic and ``[kafka] labels_topic`` with kafka-python, in the
   monitor's own consumer group (``[monitor] group_id``). Every partition of both topics is
   assigned to this process (the join state is local, so the monitor is one instance); reading
   resumes from the offsets stored in the join state, in the same sqlite transaction as the
   outcomes they produced (:meth:`JoinState.apply`), so a kill -9 loses no joined outcome and
   replays none twice. The offsets are also committed to the group, best effort, so lag tools
   see the monitor.
2. Every ``evaluate_interval_ms``: drop expired state, publish a record per changed window to
   ``[kafka] quality_topic``, refresh the Prometheus gauges, and run the rollback rule for the
   version ``[model_store] alias`` points at. Every decision, including "no rollback", is logged
   with its numbers. A rollback moves the alias through :meth:`ModelStore.rollback` and announces
   the move on the control topic the workers listen to (as ``streamscore models rollback``).
3. ``/metrics`` (Prometheus), ``/healthz`` and ``/quality`` (JSON) on ``[monitor] host:port``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from model_store.release import promote_and_announce, rollback_and_announce
from model_store.store import ModelStore
from monitor.candidate import (
    CANARY,
    END_CANARY,
    PROMOTE,
    SHADOW,
    CandidateInput,
    CandidatePolicy,
    judge,
)
from monitor.drift import DRIFT_COUNTS, PREDICTIONS, FleetDrift
from monitor.joinstate import COUNTERS, JoinState, Label, Prediction, disk_bytes
from monitor.profile import Profile, stored_profile
from monitor.quality import CLASSIFICATION, REGRESSION, QualityAggregate
from monitor.rollback import (
    FAILED,
    HOLD,
    ROLLBACK,
    Decision,
    RollbackInput,
    RollbackPolicy,
    WindowQuality,
    decide,
)
from monitor.shadow_join import ShadowBatch, ShadowJoin
from streamscore import jsonio
from streamscore.config import Config
from streamscore.exceptions import ModelStoreError, StreamscoreError
from streamscore.http_common import HttpServer, OrjsonResponse
from streamscore.kafka_admin import client_kwargs, ensure_topics

log = logging.getLogger(__name__)

METRIC_NAMES = ("accuracy", "log_loss", "roc_auc", "brier", "mae", "rmse", "coverage")


def policy_from_config(cfg: Config) -> RollbackPolicy:
    m = cfg.monitor
    return RollbackPolicy(
        auto_rollback=m.auto_rollback,
        min_labels_per_window=m.min_labels_per_window,
        min_coverage=m.min_coverage,
        consecutive_windows=m.consecutive_windows,
        accuracy_margin=m.accuracy_margin,
        log_loss_margin=m.log_loss_margin,
        mae_margin=m.mae_margin,
        cooldown_ms=m.cooldown_s * 1000,
    )


def candidate_policy_from_config(cfg: Config) -> CandidatePolicy:
    m = cfg.monitor
    return CandidatePolicy(
        auto_promote=m.auto_promote,
        auto_end_canary=m.auto_end_canary,
        promote_margin=m.promote_margin,
        min_labels_per_window=m.min_labels_per_window,
        min_coverage=m.min_coverage,
        consecutive_windows=m.consecutive_windows,
        accuracy_margin=m.accuracy_margin,
        mae_margin=m.mae_margin,
    )


def open_state(cfg: Config, path: Path | None = None) -> JoinState:
    m = cfg.monitor
    return JoinState(
        path or m.state_path,
        label_ttl_ms=m.label_ttl_s * 1000,
        label_wait_ms=m.label_wait_s * 1000,
        window_ms=m.window_s * 1000,
        max_predictions=m.max_pending_predictions,
    )


@dataclass
class _Parsed:
    predictions: list[Prediction]
    labels: list[Label]
    offsets: dict[tuple[str, int], int]
    latest_ms: int
    skipped: int
    shadow: ShadowBatch = field(default_factory=ShadowBatch)


class _Candidate(NamedTuple):
    """A candidate version (shadow or canary) and the join states it is judged on."""

    role: str  # shadow | canary
    alias: str
    version: int
    theirs: JoinState  # the candidate's predictions joined with labels
    ours: JoinState  # production's: on the same ids (shadow), on the other ids (canary)


class MonitorMetrics:
    """What ``/metrics`` exports, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.live = Gauge(
            "streamscore_live_quality",
            "Live metric of a model version over all its labelled predictions",
            ["model_version", "metric"],
            registry=r,
        )
        self.window = Gauge(
            "streamscore_live_window_quality",
            "Live metric of a model version over its latest closed window",
            ["model_version", "metric"],
            registry=r,
        )
        self.labelled = Gauge(
            "streamscore_live_labelled",
            "Predictions of a model version joined with a label",
            ["model_version"],
            registry=r,
        )
        self.join = Gauge(
            "streamscore_monitor_join_total",
            "Join outcomes since the state was created (predictions, joined, duplicate_labels, "
            "expired_labels, unknown_labels, ...)",
            ["outcome"],
            registry=r,
        )
        self.held = Gauge(
            "streamscore_monitor_pending_predictions", "Predictions held for labels", registry=r
        )
        self.waiting = Gauge(
            "streamscore_monitor_pending_labels", "Labels waiting for their prediction", registry=r
        )
        self.state_bytes = Gauge(
            "streamscore_monitor_state_bytes", "Join state on disk (sqlite + WAL)", registry=r
        )
        self.feature_drift = Gauge(
            "streamscore_feature_drift",
            "Drift of a feature against the version's reference profile, over the drift window "
            "of every worker's counts (PSI numeric, Jensen-Shannon distance categorical)",
            ["feature", "model_version"],
            registry=r,
        )
        self.prediction_drift = Gauge(
            "streamscore_prediction_drift",
            "Drift of the predictions against the held-out ones (Jensen-Shannon / PSI)",
            ["model_version"],
            registry=r,
        )
        self.decisions = Counter(
            "streamscore_monitor_decisions_total",
            "Rollback rule evaluations by outcome (rollback, report, hold, failed)",
            ["action"],
            registry=r,
        )
        self.candidate = Gauge(
            "streamscore_candidate_live_quality",
            "Live metric of a shadow or canary and of production beside it: role shadow and "
            "production_on_shadow_ids (the same ids), canary",
            ["role", "model_version", "metric"],
            registry=r,
        )
        self.candidate_decisions = Counter(
            "streamscore_monitor_candidate_decisions_total",
            "Candidate rule evaluations by role and outcome (promote, end_canary, report, hold)",
            ["role", "action"],
            registry=r,
        )


class MonitorService:
    """The monitor; :meth:`run` until ``stop`` is set."""

    def __init__(
        self,
        cfg: Config,
        *,
        clock_ms: Callable[[], int] | None = None,
        profile_of: Callable[[int], Profile | None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.policy = policy_from_config(cfg)
        self.candidate_policy = candidate_policy_from_config(cfg)
        self.store = ModelStore.from_config(cfg)
        self.state = open_state(cfg)
        self.metrics = MonitorMetrics()
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.alias = cfg.model_store.alias
        self._tasks: dict[int, str] = {}
        self._held_out: dict[int, dict[str, float]] = {}
        self._stream_ms = 0
        self._http: HttpServer | None = None
        self.last_decision: Decision | None = None
        #: [worker] shadow_alias set: its predictions joined beside production's (same ids).
        self.shadow_join: ShadowJoin | None = None
        if cfg.worker.shadow_alias:
            self.shadow_join = ShadowJoin(
                lambda path: open_state(cfg, path),
                cfg.monitor.state_path,
                cfg.model_store.model_name,
                self._task,
            )
        self.candidate_decisions: dict[str, Decision] = {}  # the latest, by role
        self.candidate_actions: dict[str, Decision] = {}  # the latest other than hold
        self._candidate_recorded: dict[tuple[str, int], tuple[str, tuple[int, ...]]] = {}
        m = cfg.monitor
        self.drift = FleetDrift(
            profile_of or (lambda version: stored_profile(self.store, version)),
            window_minutes=m.drift_window_minutes,
            min_events=m.drift_min_events,
            warn=m.drift_warn,
            alert=m.drift_alert,
        )
        self.drift_reports: dict[int, Any] = {}
        self._recorded: dict[int, tuple[str, tuple[int, ...]]] = {}
        self._fresh_decision = False
        self._summary_snapshot: dict[str, Any] = {}  # what /quality serves (HTTP thread)
        self.ready = threading.Event()
        self.port: int | None = None
        window_ms = cfg.monitor.window_s * 1000
        recent = self.clock_ms() - 3 * window_ms * max(cfg.monitor.consecutive_windows, 1)
        # Windows to publish: the recent ones again after a restart, then those that change.
        self._dirty: set[tuple[int, int]] = {
            (v, w) for v, w, _ in self.state.windows() if w >= recent
        }

    # ------------------------------------------------------------------ running

    def run(self, stop: threading.Event) -> None:
        k, m = self.cfg.kafka, self.cfg.monitor
        ensure_topics(k, self._topics())
        ensure_topics(k, [k.quality_topic], partitions=1)
        consumer = KafkaConsumer(
            **client_kwargs(k),
            group_id=m.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=m.max_poll_records,
            fetch_max_wait_ms=100,
        )
        producer = KafkaProducer(**client_kwargs(k), acks="all", linger_ms=20)
        try:
            self._http = HttpServer(self._app(), m.host, m.port)
            self._http.start()
            self.port = self._http.port
            self._assign(consumer, stop)
            self.ready.set()
            log.info(
                "monitor: joining %s with %s (state %s, %d predictions held); rollback rule %s",
                k.output_topic,
                k.labels_topic,
                m.state_path,
                self.state.held,
                "on" if m.auto_rollback else "off (report only)",
            )
            next_eval = 0.0
            while not stop.is_set():
                polled = consumer.poll(timeout_ms=200, max_records=m.max_poll_records)
                if polled:
                    parsed = self._parse(polled)
                    if self.shadow_join is not None:  # first: see monitor.shadow_join
                        self.shadow_join.apply(parsed.shadow, parsed.labels)
                    result = self.state.apply(parsed.predictions, parsed.labels, parsed.offsets)
                    self._dirty |= result.windows
                    self._stream_ms = max(self._stream_ms, parsed.latest_ms)
                    self._commit(consumer, parsed.offsets)
                if time.monotonic() >= next_eval:
                    self.evaluate(producer)
                    next_eval = time.monotonic() + m.evaluate_interval_ms / 1000
        finally:
            try:
                producer.close(timeout=5)
            finally:
                consumer.close(autocommit=False)
                if self._http is not None:
                    self._http.stop()
                self.state.close()
                if self.shadow_join is not None:
                    self.shadow_join.close()

    def _assign(self, consumer: Any, stop: threading.Event) -> None:
        k = self.cfg.kafka
        tps: list[TopicPartition] = []
        for topic in self._topics():
            partitions = consumer.partitions_for_topic(topic)
            deadline = time.monotonic() + k.request_timeout_ms / 1000
            while not partitions and not stop.is_set() and time.monotonic() < deadline:
                time.sleep(0.2)
                partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise StreamscoreError(
                    f"topic {topic!r} has no partitions at {k.bootstrap_servers}; create it "
                    f"(`streamscore worker` creates the output topic) or fix [kafka]"
                )
            tps.extend(TopicPartition(topic, p) for p in sorted(partitions))
        consumer.assign(tps)
        stored = self.state.offsets()
        if self.shadow_join is not None:
            stored |= self.shadow_join.offsets()
        drift_tps = [tp for tp in tps if tp.topic == k.monitoring_topic]
        for tp in tps:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None or tp.topic == k.monitoring_topic:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        self._seek_drift_window(consumer, drift_tps)

    def _topics(self) -> list[str]:
        k = self.cfg.kafka
        topics = [k.output_topic, k.labels_topic, k.monitoring_topic]
        return topics + ([k.shadow_topic] if self.shadow_join is not None else [])

    def _seek_drift_window(self, consumer: Any, tps: list[TopicPartition]) -> None:
        """Drift counts are not kept in the join state: re-read the last drift window of them
        (from the beginning where the broker cannot look offsets up by time)."""
        since = self.clock_ms() - self.cfg.monitor.drift_window_minutes * 60_000
        try:
            found = consumer.offsets_for_times(dict.fromkeys(tps, since))
        except (KafkaError, ValueError) as exc:
            log.debug("offsets_for_times unavailable (%s): drift counts from the beginning", exc)
            return
        for tp, at in (found or {}).items():
            if at is not None:
                consumer.seek(tp, at.offset)

    def _commit(self, consumer: Any, offsets: dict[tuple[str, int], int]) -> None:
        """Offsets to the group too (for lag tools); the join state's copy is the one used."""
        try:
            consumer.commit_async(
                {
                    TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                    for (t, p), o in offsets.items()
                }
            )
        except KafkaError as exc:
            log.debug("group commit failed (the join state has the offsets): %s", exc)

    # ------------------------------------------------------------------ parsing

    def _parse(self, polled: dict[Any, list[Any]]) -> _Parsed:
        out = _Parsed([], [], {}, 0, 0)
        output, labels = self.cfg.kafka.output_topic, self.cfg.kafka.labels_topic
        model = self.cfg.model_store.model_name
        drift_topic = self.cfg.kafka.monitoring_topic
        for tp, records in polled.items():
            if not records:
                continue
            if tp.topic == drift_topic:
                self._add_drift(records)
                continue
            if self.shadow_join is not None and tp.topic == self.cfg.kafka.shadow_topic:
                self.shadow_join.parse(tp.topic, tp.partition, records, out.shadow)
                out.latest_ms = max(out.latest_ms, int(records[-1].timestamp))
                continue
            out.offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
            for record in records:
                out.latest_ms = max(out.latest_ms, int(record.timestamp))
                try:
                    value = jsonio.loads(record.value)
                    if tp.topic == output:
                        described = value.get("model") or {}
                        if described.get("name") != model:
                            out.skipped += 1
                            continue
                        version = int(described["version"])
                        out.predictions.append(
                            Prediction(
                                id=str(value["id"]),
                                version=version,
                                predicted_at_ms=int(value.get("scored_at") or record.timestamp),
                                prediction=value["prediction"],
                                probabilities=value.get("probabilities"),
                                task=self._task(version, value),
                            )
                        )
                    elif tp.topic == labels:
                        out.labels.append(
                            Label(str(value["id"]), value["label"], int(record.timestamp))
                        )
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    out.skipped += 1
                    log.warning(
                        "%s[%d] offset %d skipped: not a %s (%s: %s)",
                        tp.topic,
                        tp.partition,
                        record.offset,
                        "prediction" if tp.topic == output else 'label {"id": ..., "label": ...}',
                        type(exc).__name__,
                        exc,
                    )
        return out

    def _add_drift(self, records: list[Any]) -> None:
        model = self.cfg.model_store.model_name
        for record in records:
            try:
                value = jsonio.loads(record.value)
            except jsonio.JSONDecodeError:
                continue
            if (
                isinstance(value, dict)
                and value.get("type") == DRIFT_COUNTS
                and (value.get("model") or {}).get("name") == model
            ):
                self.drift.add(value)

    def _task(self, version: int, value: dict[str, Any]) -> str:
        task = self._tasks.get(version)
        if task is None:
            try:
                manifest = self.store.manifest(version)
                task = manifest.task
                self._held_out[version] = dict(manifest.metrics)
            except ModelStoreError:
                task = CLASSIFICATION if value.get("probabilities") else REGRESSION
                if isinstance(value.get("prediction"), (str, bool, int)):
                    task = CLASSIFICATION
            self._tasks[version] = task
        return task

    # ------------------------------------------------------------------ evaluating

    def evaluate(self, producer: Any | None = None) -> Decision | None:
        """Expire state, publish changed windows, refresh gauges, run the rollback rule."""
        if self._stream_ms:
            self.state.expire(self._stream_ms)
            if self.shadow_join is not None:
                self.shadow_join.expire(self._stream_ms)
        now = self.clock_ms()
        if producer is not None:
            self._publish_windows(producer, now)
        self._refresh_metrics(now)
        self._fresh_decision = False
        decision = self._rule(now)
        if decision is not None and producer is not None and self._fresh_decision:
            self._send(producer, {"type": "decision", **_decision_dict(decision), "at": now})
            producer.flush(timeout=10)
        for fresh in self._candidate_rules(now):
            if producer is not None:
                self._send(producer, {"type": "decision", **_decision_dict(fresh), "at": now})
                producer.flush(timeout=10)
        if producer is not None:
            for record in self.candidate_records(now):
                self._send(producer, record)
        self._summary_snapshot = self.summary()
        return decision

    def _closed_windows(
        self, version: int, now: int, state: JoinState | None = None
    ) -> list[WindowQuality]:
        window_ms = self.cfg.monitor.window_s * 1000
        out = []
        for _, start, agg in (state or self.state).windows(version):
            metrics = agg.metrics()
            out.append(
                WindowQuality(
                    start_ms=start,
                    end_ms=start + window_ms,
                    predictions=agg.predictions,
                    labelled=agg.labelled,
                    metrics=metrics,
                )
            )
        return [w for w in out if w.end_ms <= now]

    def _rule(self, now: int) -> Decision | None:
        current = self.store.alias_state(self.alias)
        if current is None:
            return None
        version = current[0]
        if version not in self.state.versions():
            return None  # nothing scored by it yet
        stack = self.store.book.stack(self.alias)
        previous = stack[-2] if len(stack) >= 2 else None
        decisions = self.state.decisions()
        rollbacks = [(at, v) for at, v, action, _ in decisions if action == ROLLBACK]
        previous_live: dict[str, Any] = {}
        previous_labelled = 0
        if previous is not None:
            prev = self.state.cumulative(previous)
            previous_live, previous_labelled = prev.metrics(), prev.labelled
        given = RollbackInput(
            version=version,
            task=self._tasks.get(version) or self._manifest_task(version),
            previous_version=previous,
            windows=self._closed_windows(version, now),
            held_out=self._held_out_metrics(version),
            previous_live=previous_live,
            previous_labelled=previous_labelled,
            now_ms=now,
            last_rollback_ms=max((at for at, _ in rollbacks), default=None),
            rolled_back_versions=frozenset(v for _, v in rollbacks),
        )
        decision = decide(self.policy, given)
        numbers = jsonio.dumps(decision.numbers).decode()
        log.info(
            "rollback rule for v%d: %s: %s %s", version, decision.action, decision.reason, numbers
        )
        if decision.rolls_back:
            # Recorded only once the store has moved the alias: the record is what the
            # once-per-version check and the cool-down count, so a failed attempt (or a
            # process that dies before the move) leaves the rule free to try again.
            failure = self._roll_back(decision, now)
            if failure is None:
                self.state.record_decision(now, version, decision.action, decision.reason)
            else:
                decision = Decision(
                    FAILED,
                    version,
                    decision.target,
                    f"{decision.reason}; the rollback failed ({failure}): tried again at the "
                    "next evaluation",
                    decision.numbers,
                )
            self._fresh_decision = True
        elif decision.action != HOLD:
            # A report repeats at every evaluation while the same windows are bad: record it
            # (and publish it) once per set of windows.
            key = (decision.action, tuple(decision.numbers.get("windows", ())))
            if self._recorded.get(version) != key:
                self._recorded[version] = key
                self.state.record_decision(now, version, decision.action, decision.reason)
                self._fresh_decision = True
        self.last_decision = decision
        self.metrics.decisions.labels(decision.action).inc()
        return decision

    def _scored_candidates(self) -> Iterator[_Candidate]:
        """The shadow (when it is joined) and the canary (when configured) whose alias points
        at a version with joined predictions. Each alias is read as the loop reaches it (after
        what the loop did for the one before: a promote moves an alias)."""
        w = self.cfg.worker
        roles: list[tuple[str, str, JoinState, JoinState]] = []
        if self.shadow_join is not None:
            roles.append(
                (SHADOW, w.shadow_alias, self.shadow_join.shadow, self.shadow_join.production)
            )
        if w.canary_alias:
            roles.append((CANARY, w.canary_alias, self.state, self.state))
        for role, alias, theirs, ours in roles:
            state = self.store.alias_state(alias)
            if state is not None and state[0] in theirs.versions():
                yield _Candidate(role, alias, state[0], theirs, ours)

    def _candidate_rules(self, now: int) -> list[Decision]:
        """The shadow and canary rules (monitor.candidate); returns the fresh decisions (not
        hold, new windows) that were recorded, and acts on promote / end_canary."""
        current = self.store.alias_state(self.alias)
        if current is None:
            return []
        production = current[0]
        fresh: list[Decision] = []
        for role, alias, version, theirs, ours in self._scored_candidates():
            given = CandidateInput(
                role=role,
                version=version,
                production_version=production,
                task=self._tasks.get(version) or self._manifest_task(version),
                candidate_windows=self._closed_windows(version, now, theirs),
                production_windows=self._closed_windows(production, now, ours),
                now_ms=now,
            )
            decision = judge(self.candidate_policy, given)
            self.candidate_decisions[role] = decision
            self.metrics.candidate_decisions.labels(role, decision.action).inc()
            log.info(
                "candidate rule for %s v%d: %s: %s %s",
                role,
                version,
                decision.action,
                decision.reason,
                jsonio.dumps(decision.numbers).decode(),
            )
            if decision.action == HOLD:
                continue
            key = (decision.action, tuple(decision.numbers.get("windows", ())))
            if self._candidate_recorded.get((role, version)) == key:
                continue
            self._candidate_recorded[(role, version)] = key
            self.candidate_actions[role] = decision
            self.state.record_decision(now, version, f"{role} {decision.action}", decision.reason)
            fresh.append(decision)
            if decision.action == PROMOTE:
                self._move(self.alias, version, decision)
            elif decision.action == END_CANARY:
                self._move(alias, production, decision)
        return fresh

    def candidate_records(self, now: int) -> list[dict[str, Any]]:
        """One quality record per candidate (type ``candidate``): its live metrics next to
        production's, cumulative; for the shadow on the same ids (the shadow's join states),
        for the canary on the other ids of the same stream. Workers show them on the status
        page (worker.live_quality)."""
        current = self.store.alias_state(self.alias)
        if current is None:
            return []
        production = current[0]
        out: list[dict[str, Any]] = []
        for role, alias, version, theirs, ours in self._scored_candidates():
            if version == production:
                continue
            out.append(
                {
                    "type": "candidate",
                    "role": role,
                    "alias": alias,
                    "model": {"name": self.cfg.model_store.model_name, "version": version},
                    "production_version": production,
                    "cumulative": theirs.cumulative(version).metrics(),
                    "production_cumulative": ours.cumulative(production).metrics(),
                    "at": now,
                }
            )
        return out

    def _move(self, alias: str, version: int, decision: Decision) -> None:
        """Point ``alias`` at ``version`` for a candidate decision, and tell the workers."""
        try:
            move = promote_and_announce(
                self.store, self.cfg.kafka, version, alias, reason=f"monitor: {decision.reason}"
            )
        except ModelStoreError as exc:
            self.metrics.candidate_decisions.labels("any", "failed").inc()
            log.error("moving %r to v%d failed: %s", alias, version, exc)
            return
        log.warning(
            "MOVED %s %r v%s -> v%d (%s): %s",
            self.cfg.model_store.model_name,
            alias,
            move.event.from_version,
            move.event.to_version,
            "workers notified" if move.announced else "no notice: workers see it on their poll",
            decision.reason,
        )

    def _manifest_task(self, version: int) -> str:
        try:
            return self.store.manifest(version).task
        except ModelStoreError:
            return CLASSIFICATION

    def _held_out_metrics(self, version: int) -> dict[str, float]:
        if version not in self._held_out:
            try:
                self._held_out[version] = dict(self.store.manifest(version).metrics)
            except ModelStoreError:
                self._held_out[version] = {}
        return self._held_out[version]

    def _roll_back(self, decision: Decision, now: int) -> str | None:
        """Move the alias back through the store and announce it; why not, if the store refused
        or failed (recorded as ``failed`` with its reason; the next evaluation tries again).
        An announcement that is not acknowledged does not undo the move: workers see it on
        their poll."""
        try:
            move = rollback_and_announce(
                self.store, self.cfg.kafka, self.alias, reason=f"monitor: {decision.reason}"
            )
        except (ModelStoreError, OSError) as exc:
            self.state.record_decision(now, decision.version, FAILED, str(exc))
            log.error(
                "automatic rollback of v%d failed: %s; the rule tries again at its next "
                "evaluation (in %d ms)",
                decision.version,
                exc,
                self.cfg.monitor.evaluate_interval_ms,
            )
            return f"{type(exc).__name__}: {exc}"
        event = move.event
        log.warning(
            "ROLLED BACK %s %r v%s -> v%d (%s): %s",
            self.cfg.model_store.model_name,
            self.alias,
            event.from_version,
            event.to_version,
            "workers notified" if move.announced else "no notice: workers see it on their poll",
            decision.reason,
        )
        return None

    # ------------------------------------------------------------------ publishing

    def quality_record(self, version: int, window_start: int) -> dict[str, Any]:
        window_ms = self.cfg.monitor.window_s * 1000
        return {
            "type": "window",
            "model": {"name": self.cfg.model_store.model_name, "version": version},
            "window_start_ms": window_start,
            "window_end_ms": window_start + window_ms,
            "metrics": self.state.window(version, window_start).metrics(),
            "cumulative": self.state.cumulative(version).metrics(),
        }

    def _publish_windows(self, producer: Any, now: int) -> None:
        dirty, self._dirty = self._dirty, set()
        for version, start in sorted(dirty):
            self._send(producer, {**self.quality_record(version, start), "at": now})
        if dirty:
            try:
                producer.flush(timeout=10)
            except KafkaError as exc:
                log.warning("quality records not acknowledged: %s", exc)

    def _send(self, producer: Any, record: dict[str, Any]) -> None:
        try:
            producer.send(self.cfg.kafka.quality_topic, value=jsonio.dumps(record))
        except KafkaError as exc:
            log.warning("could not publish to %s: %s", self.cfg.kafka.quality_topic, exc)

    def _refresh_metrics(self, now: int) -> None:
        m = self.metrics
        for version in self.state.versions():
            label = str(version)
            cumulative = self.state.cumulative(version)
            m.labelled.labels(label).set(cumulative.labelled)
            _set_gauges(m.live, label, cumulative)
            closed = self._closed_windows(version, now)
            if closed:
                _set_gauges(m.window, label, self.state.window(version, closed[-1].start_ms))
        for name, value in self.state.counters().items():
            if name in COUNTERS:
                m.join.labels(name).set(value)
        self.drift_reports = self.drift.evaluate(now)
        for version, report in self.drift_reports.items():
            for score in report.scores:
                if score.value is None:
                    continue
                if score.column == PREDICTIONS:
                    m.prediction_drift.labels(str(version)).set(score.value)
                else:
                    m.feature_drift.labels(score.column, str(version)).set(score.value)
                if score.level == "alert":
                    log.warning(
                        "drift alert v%d %s: %s %.3f >= %.2f over %d events in %d minutes",
                        version,
                        "predictions" if score.column == PREDICTIONS else score.column,
                        score.metric,
                        score.value,
                        self.cfg.monitor.drift_alert,
                        report.events,
                        report.window_minutes,
                    )
        self._refresh_candidates()
        m.held.set(self.state.held)
        m.waiting.set(self.state.pending_labels())
        m.state_bytes.set(disk_bytes(self.state.path))
        self._summary_snapshot = self.summary()

    def _refresh_candidates(self) -> None:
        gauge = self.metrics.candidate
        if self.shadow_join is not None:
            for role, state in (
                ("shadow", self.shadow_join.shadow),
                ("production_on_shadow_ids", self.shadow_join.production),
            ):
                for version in state.versions():
                    _set_role_gauges(gauge, role, str(version), state.cumulative(version))
        canary = self.cfg.worker.canary_alias
        at = self.store.alias_state(canary) if canary else None
        if at is not None and at[0] in self.state.versions():
            _set_role_gauges(gauge, "canary", str(at[0]), self.state.cumulative(at[0]))

    def snapshot(self) -> dict[str, Any]:
        """The latest :meth:`summary`, refreshed at every evaluation (safe from any thread)."""
        return self._summary_snapshot

    def summary(self) -> dict[str, Any]:
        versions = {str(v): self.state.cumulative(v).metrics() for v in self.state.versions()}
        last = self.last_decision
        return {
            "model": self.cfg.model_store.model_name,
            "alias": self.alias,
            "versions": versions,
            "counters": self.state.counters(),
            "pending_predictions": self.state.held,
            "pending_labels": self.state.pending_labels(),
            "drift": {str(v): r.to_dict() for v, r in self.drift_reports.items()},
            "last_decision": None if last is None else _decision_dict(last),
            "candidates": self._candidates_summary(),
        }

    def _candidates_summary(self) -> dict[str, Any]:
        w = self.cfg.worker
        out: dict[str, Any] = {}
        for role, alias in ((SHADOW, w.shadow_alias), (CANARY, w.canary_alias)):
            if not alias:
                continue
            state = self.store.alias_state(alias)
            decision = self.candidate_decisions.get(role)
            action = self.candidate_actions.get(role)
            part: dict[str, Any] = {
                "alias": alias,
                "version": state[0] if state else None,
                "last_decision": None if decision is None else _decision_dict(decision),
                "last_action": None if action is None else _decision_dict(action),
            }
            if role == SHADOW and self.shadow_join is not None:
                part.update(self.shadow_join.cumulative())
            out[role] = part
        return out

    def _app(self) -> Starlette:
        async def metrics(_: Request) -> Response:
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

        async def healthz(_: Request) -> Response:
            return PlainTextResponse("ok")

        async def quality(_: Request) -> Response:
            return OrjsonResponse(self._summary_snapshot)

        return Starlette(
            routes=[
                Route("/metrics", metrics),
                Route("/healthz", healthz),
                Route("/quality", quality),
            ]
        )


def _set_gauges(gauge: Gauge, version: str, agg: QualityAggregate) -> None:
    for name, value in agg.metrics().items():
        if name in METRIC_NAMES and value is not None:
            gauge.labels(version, name).set(float(value))


def _set_role_gauges(gauge: Gauge, role: str, version: str, agg: QualityAggregate) -> None:
    for name, value in agg.metrics().items():
        if name in METRIC_NAMES and value is not None:
            gauge.labels(role, version, name).set(float(value))


def _decision_dict(decision: Decision) -> dict[str, Any]:
    return {
        "action": decision.action,
        "version": decision.version,
        "target": decision.target,
        "reason": decision.reason,
        "numbers": decision.numbers,
    }
