"""The scoring worker: one consumer-group member that scores events in micro-batches.

:class:`ScoringWorker` composes the parts and runs the loop; each part lives in a module
named for what it does:

- :mod:`worker.swap`: swap in a newly promoted model (between batches only);
- :mod:`worker.batcher`: gather a batch (waiting up to ``max_wait_ms`` for the first event,
  at most ``max_batch_records``), drop what a revoke takes away, rewind after a rebalance;
- :mod:`worker.processor`: score the batch;
- :mod:`worker.commit`: publish predictions and dead letters, wait for the broker to
  acknowledge each one, then commit the batch's offsets;
- :mod:`worker.pipeline`: the batches in flight (published, acks awaited while the next batch
  is polled and scored, committed in order; a revoke or a stop finishes them first);
- :mod:`worker.transport`: the Kafka client pair behind all of that;
- :mod:`worker.metrics` and :mod:`worker.status`: what the worker reports;
- :mod:`worker.fleet`: its last minute, published for the fleet (``streamscore status``),
  and the fleet as its control listener hears it (:mod:`worker.fleet_view`).

An offset is committed only after its output is acknowledged, so a worker killed at any point
loses nothing: its partitions move to another member, which resumes from the last commit
(at-least-once). ``stop()`` (SIGTERM/SIGINT) ends polling, finishes the batches in flight,
commits, leaves the group and returns. The HTTP side is started by whoever runs the worker
(:mod:`worker.runner`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from model_store import ModelStore
from monitor.profile import Profile, stored_profile
from monitor.worker_drift import WorkerDrift
from streamscore import jsonio
from streamscore.config import Config
from streamscore.control import NOTICE_ALIAS_MOVED, ControlListener
from streamscore.exceptions import StreamscoreError
from streamscore.kafka_admin import ensure_topics
from streamscore.wire import OutRecord
from worker.batcher import Batcher, BatchLimits
from worker.commit import publish_in_transaction
from worker.fleet import (
    MEMBER_STATUS,
    MemberIdentity,
    RecentActivity,
    StatusPublisher,
    member_record,
)
from worker.fleet_view import FleetBook, gone_after_s
from worker.live_quality import LOOKBACK_S as QUALITY_LOOKBACK_S
from worker.live_quality import LiveQualityBook
from worker.membership import FenceWatch, Membership, instance_name, plan_membership
from worker.metrics import WorkerMetrics
from worker.pacing import BatchPacer
from worker.pipeline import InFlight, Pipeline
from worker.processor import BatchProcessor, BatchResult, Destinations, ServingModel
from worker.refusals import RefusedReplacer
from worker.reloader import ModelReloader, ReloadEvent
from worker.shadow import Candidates
from worker.side_steps import SideSteps
from worker.status import WorkerStatus
from worker.swap import swap_between_batches
from worker.topics import TopicKeeper, ensure_worker_extras
from worker.transport import (
    ClientsBroken,
    DeliveryFailed,
    InstanceFenced,
    Partition,
    Transport,
    make_transport,
)
from worker.validation import ValidationPolicy

log = logging.getLogger(__name__)

#: Logged when a shutdown leaves a batch unacknowledged (its offsets are not committed).
_SCORED_AGAIN = "shutdown: %s; they will be scored again by the next owner"

__all__ = ["ScoringWorker", "WorkerStatus", "make_transport"]


class _Settled:
    """The ``sending`` of a batch published in a transaction: acknowledged already."""

    def acknowledged(self) -> bool:
        return True


_SETTLED = _Settled()


class ScoringWorker:
    def __init__(
        self,
        cfg: Config,
        *,
        index: int = 0,
        members: int = 1,
        worker_id: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.index = index
        #: Processes of this worker's supervisor: with ``[worker] assignment = "supervisor"``
        #: this one owns the input partitions p with ``p % members == index``.
        self.members = members
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{index}"
        w = cfg.worker
        self.metrics = WorkerMetrics()
        self.store = ModelStore.from_config(cfg)
        extra = (w.id_field, *w.passthrough)
        self.reloader = ModelReloader(
            self.store,
            cfg.model_store.alias,
            ValidationPolicy.from_config(w),
            poll_ms=w.reload_poll_ms,
            allowed_extra=extra,
            on_event=self._on_reload_event,
        )
        self.processor = BatchProcessor(
            Destinations(
                output_topic=cfg.kafka.output_topic,
                dead_letter_topic=cfg.kafka.dead_letter_topic,
                group=cfg.kafka.group_id,
                worker_id=self.worker_id,
                id_field=w.id_field,
                passthrough=tuple(w.passthrough),
                max_message_bytes=w.max_message_bytes,
            )
        )
        self.status = WorkerStatus(worker_id=self.worker_id, started_at=time.time())
        self.activity = RecentActivity()
        self.identity = MemberIdentity(self.worker_id, cfg.kafka.group_id, index)
        self.fleet = FleetBook(cfg.kafka.group_id, gone_after_s(cfg.kafka, w.status_interval_ms))
        self.live_quality = LiveQualityBook(
            cfg.model_store.model_name, lambda v: self.store.manifest(v).metrics
        )
        self.model: ServingModel | None = None
        self._stop = threading.Event()
        #: Batches published and not yet committed; exactly-once stays one batch at a time.
        depth = 1 if w.delivery == "exactly-once" else w.max_batches_in_flight
        self.pipeline = Pipeline(depth, self._stop, self._record_batch, w.commit_interval_ms / 1000)
        self.batcher = Batcher(
            BatchLimits.from_config(w),
            self._stop,
            self._on_ownership,
            before_revoke=self.pipeline.before_revoke,
        )
        #: Caps batches so that scoring one takes at most poll_budget_fraction of the poll
        #: interval (measured per model version).
        self.pacer = BatchPacer.from_config(cfg)
        self._transport: Transport | None = None
        self._lag_checked = 0.0
        self._joined = False
        self._waiting_since = time.monotonic()
        self.membership: Membership | None = None
        #: Fenced again and again: another process uses this static member name.
        self._fences = FenceWatch(cfg, instance_name(cfg, index))
        #: A member waiting this long for an assignment rejoins with a new consumer.
        self.join_timeout_s = max(4 * cfg.kafka.session_timeout_ms / 1000, 15.0)
        #: The reference profile of a version (None: no drift counting for it).
        self.profile_of: Callable[[int], Profile | None] = lambda v: stored_profile(self.store, v)
        self.drift: WorkerDrift | None = None
        #: [worker] shadow_alias and canary_alias (worker.shadow).
        self.candidates = Candidates(
            cfg, self.store, self.metrics.registry, on_event=self._on_reload_event
        )
        #: Drift counting, shadow records, refusal replacement: guarded (worker.side_steps).
        self.side_steps = SideSteps(self.metrics.side_step_failures)

    # ------------------------------------------------------------------ control

    def stop(self) -> None:
        """Ask the loop to finish the batch in flight, commit and exit. Signal-safe."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def ready(self) -> bool:
        """A model is loaded and at least one partition is assigned."""
        return self.model is not None and bool(self.status.assigned)

    def request_reload(self) -> None:
        self.reloader.wake()

    # ------------------------------------------------------------------ main loop

    def run(self) -> None:
        cfg = self.cfg
        # First: a worker asked for exactly-once on a broker that cannot honour it stops here.
        self.membership = plan_membership(cfg, self.index)
        ensure_topics(cfg.kafka)
        shadow = bool(cfg.worker.shadow_alias)
        try:
            ensure_worker_extras(cfg.kafka, shadow=shadow)
        except StreamscoreError as exc:  # the brokers went away since: the keeper makes them
            log.warning("monitoring/shadow topics not checked yet (%s); the topic keeper will", exc)
        keeper = TopicKeeper(cfg.kafka, cfg.worker.topic_check_ms, shadow=shadow)
        keeper.start()
        self.reloader.start()
        self.candidates.start()
        control = ControlListener(cfg.kafka, self._on_notice)
        control.start()
        quality = self._start_quality_reader()
        reporter = self._start_reporting()
        try:
            if not self.reloader.wait_for_model(self._stop):
                return
            self._swap_model()
            while not self._stop.is_set():
                if not self._member_session(cfg):
                    break
        finally:
            keeper.stop()
            if reporter is not None:
                reporter.stop()
            control.stop()
            if quality is not None:
                quality.stop()
            self.candidates.stop()
            self.reloader.stop()
            log.info(
                "worker %s stopped: %d scored, %d dead letters",
                self.worker_id,
                self.status.scored,
                self.status.dead_letters,
            )

    def _member_session(self, cfg: Config) -> bool:
        """One consumer-group membership. True when it should be started afresh: the
        member got no assignment (not even an empty one) within ``join_timeout_s``."""
        transport = self._connect(cfg)
        if transport is None:  # stopped while the brokers were away
            return False
        self._transport = transport
        self._joined = False
        self._waiting_since = time.monotonic()
        inputs = transport.partition_count(cfg.kafka.input_topic)
        outputs = transport.partition_count(cfg.kafka.output_topic)
        # Same partition counts: a prediction goes to its event's partition number, which is
        # where the default (murmur2) partitioner would put its key, without hashing each key.
        self.processor.follow_partitions = inputs is not None and inputs == outputs
        serving = self.model.label if self.model else "nothing"
        self.batcher.reset()
        self.pipeline.start(transport)
        if cfg.worker.assignment == "supervisor":
            self._assign_own_share(transport, inputs or cfg.kafka.partitions, serving)
        else:
            transport.subscribe(cfg.kafka.input_topic, self.batcher.assign, self.batcher.revoke)
            m = self.membership
            log.info(
                "worker %s joining group %r on %s (%s, %s), serving %s",
                self.worker_id,
                cfg.kafka.group_id,
                cfg.kafka.input_topic,
                f"static member {m.instance}" if m and m.static else "dynamic member",
                "exactly-once" if m and m.exactly_once else "at-least-once",
                serving,
            )
        drain, stuck = True, False
        try:
            stuck = self._loop(transport)
            if stuck:
                log.warning(
                    "worker %s got no partition assignment within %.0fs (a rebalance that "
                    "never completed); rejoining the group with a new consumer",
                    self.worker_id,
                    self.join_timeout_s,
                )
        except ClientsBroken as exc:  # nothing of it committed: no drain, a new pair
            drain, stuck = False, True
            if isinstance(exc, InstanceFenced):
                self._fences.fenced()  # WorkerConflict: another process has this name
            log.warning(
                "worker %s: %s; replacing its Kafka clients (the batch in hand is not "
                "committed: the new clients resume from the group's commits)",
                self.worker_id,
                exc,
            )
        except DeliveryFailed as exc:  # raised only once stop() was called
            drain = False  # a drain would commit past the unacknowledged batch
            log.error(_SCORED_AGAIN, exc)
        finally:
            if drain:
                self._drain(transport)
            self.pipeline.end()  # (after a failure: what is in flight stays uncommitted)
            transport.close()
            self._transport = None
        return stuck

    def _assign_own_share(self, transport: Transport, partitions: int, serving: str) -> None:
        """``[worker] assignment = "supervisor"``: take partitions ``p % members == index``
        without joining the consumer group (no rebalance, so nothing to wedge on a broker
        whose group coordinator can get stuck), committing under ``group_id``."""
        topic = self.cfg.kafka.input_topic
        mine = [p for p in range(partitions) if p % self.members == self.index]
        if not mine:
            log.warning(
                "worker %s has no partition of %s: %d partitions for %d processes (raise "
                "[kafka] partitions or run fewer processes)",
                self.worker_id,
                topic,
                partitions,
                self.members,
            )
        transport.assign(topic, mine)
        log.info(
            "worker %s (process %d of %d of its supervisor) takes %s for group %r, serving %s",
            self.worker_id,
            self.index,
            self.members,
            topic,
            self.cfg.kafka.group_id,
            serving,
        )
        self.batcher.assign([(topic, p) for p in mine])

    def _connect(self, cfg: Config) -> Transport | None:
        """A new client pair, waiting out brokers that cannot be reached yet (a restart of the
        cluster: kafka-python bootstraps in its constructors, and a transactional producer's
        ``init_transactions`` needs the transaction coordinator). None once stopped."""
        backoff = cfg.worker.retry_backoff_ms / 1000
        while True:
            try:
                return make_transport(
                    cfg, client_id=f"{cfg.kafka.client_id}-{self.index}", membership=self.membership
                )
            except StreamscoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - kafka-python KafkaError, librdkafka KafkaException
                if self._stop.is_set():
                    return None
                log.warning("cannot connect to Kafka yet (%s); retrying in %.1fs", exc, backoff)
                if self._stop.wait(backoff):
                    return None
                backoff = min(backoff * 2, cfg.worker.max_retry_backoff_ms / 1000)

    def _loop(self, transport: Transport) -> bool:
        """Poll, score, publish, commit until stopped (False) or stuck joining (True)."""
        while not self._stop.is_set():
            self._swap_model()
            model = self.model
            cap = self.pacer.cap(model.version_text) if model is not None else None
            batch = self.batcher.gather(transport, cap)
            if batch:
                # A version loaded while this batch was gathered (an idle poll waits up to
                # idle_wait_ms) scores it: an event sent after the swap was logged is never
                # scored by the version before.
                self._swap_model()
                self._handle_batch(transport, batch)
            else:  # nothing new: commit what is in flight now
                self.pipeline.finish()
            self._update_lag(transport)
            if not self._joined and time.monotonic() - self._waiting_since > self.join_timeout_s:
                return True
        return False

    def _drain(self, transport: Transport) -> None:
        """At shutdown: score what was gathered, finish every batch in flight (acks, commit)."""
        batch = self.batcher.take()
        try:
            if batch:
                self._handle_batch(transport, batch)
            self.pipeline.finish()
        except (DeliveryFailed, ClientsBroken) as exc:
            log.error(_SCORED_AGAIN, exc)

    def _handle_batch(self, transport: Transport, records: list[Any]) -> None:
        """Score, publish; the batch's acks are awaited, then its offsets committed, while the
        next batch is polled and scored (:mod:`worker.pipeline`)."""
        model = self.model
        assert model is not None, "consuming without a model"
        # Commit what the broker acknowledged already (not waiting): were this batch to outlive
        # the poll interval (a model that just slowed down), those commits would be refused
        # and their batches scored again by the next owner. Coalesced commits
        # ([worker] commit_interval_ms > 0) keep their interval here too.
        self.pipeline.finish(keep=len(self.pipeline), commit_now=False)
        started = time.perf_counter()
        result = self.processor.process(records, model, self.candidates.canary_for(model))
        scoring_s = time.perf_counter() - started
        self.metrics.scoring_seconds.labels(model_version=model.version_text).observe(scoring_s)
        self.pacer.observe(model.version_text, len(records), scoring_s)
        # Side steps: what fails in one of them skips its output for this batch, never the
        # batch (the predictions are published and the offsets committed all the same).
        if self.drift is not None and result.matrix is not None:
            self.side_steps.run("drift", result, lambda: self._count_drift(result))
        replace = self.side_steps.guard_replacer(
            RefusedReplacer(self.processor, model, records, result, self.cfg.kafka)
        )
        self.side_steps.run("shadow", result, lambda: self.candidates.shadow_batch(model, result))
        if self.membership is not None and self.membership.exactly_once:
            if not publish_in_transaction(transport, result.records, records, self._stop, replace):
                # Aborted: nothing of the batch is visible. Partitions this member keeps
                # resume at the batch's first events; the new owner of the others starts from
                # the committed offsets, which are the same.
                self.batcher.rewind_to(records)
                return
            self._record_batch(InFlight(records, result, model, _SETTLED, None, committed=True))
        else:
            sending = transport.send(result.records)
            self.pipeline.add(InFlight(records, result, model, sending, replace))

    def _record_batch(self, batch: InFlight) -> None:
        """A batch is finished (acknowledged, committed): count it."""
        model, records, result = batch.model, batch.records, batch.result
        dead = self.metrics.record_batch(model, len(records), result)
        if result.canary_predictions and self.candidates.canary is not None:
            self.metrics.record_canary(self.candidates.canary, result)
        self.activity.record_batch(
            records,
            result,
            dead_letter_topic=self.cfg.kafka.dead_letter_topic,
            model_label=model.label,
            input_topic=self.cfg.kafka.input_topic,
        )
        s = self.status
        s.scored += result.scored
        s.dead_letters += dead
        s.batches += 1
        s.last_batch_at = time.time()

    def _count_drift(self, result: BatchResult) -> None:
        """Count the batch into the current minute; finished minutes ride along with the
        batch's outputs to the monitoring topic (acknowledged before the commit)."""
        drift = self.drift
        assert drift is not None
        now = time.time_ns() // 1_000_000
        drift.observe(result.matrix, np.asarray(result.predictions), at_ms=now)
        finished = drift.drain(now)
        if finished:
            topic = self.cfg.kafka.monitoring_topic
            key = self.worker_id.encode()
            result.records.extend([OutRecord(topic, key, jsonio.dumps(r), []) for r in finished])
            self.metrics.drift(drift.version, drift.scores(now))

    def _update_lag(self, transport: Transport) -> None:
        now = time.monotonic()
        if now - self._lag_checked < 1.0:
            return
        self._lag_checked = now
        self.metrics.record_lag(transport, self.status.assigned)

    # ------------------------------------------------------------------ the fleet

    def member_record(self, state: str | None = None) -> dict[str, Any]:
        """This member's status record, as published for the fleet (built now)."""
        record = member_record(
            self.identity,
            self.status,
            self.activity,
            self.metrics,
            ready=self.ready,
            interval_ms=self.cfg.worker.status_interval_ms,
            state=state,
        )
        candidates = self.candidates.status(self.model)
        if candidates:
            record["candidates"] = candidates
            canary = candidates.get("canary") or {}
            if canary.get("fraction") and canary.get("version") is not None:
                record["serving"][canary["alias"]] = canary["version"]  # it publishes too
        return record

    def _start_reporting(self) -> StatusPublisher | None:
        interval = self.cfg.worker.status_interval_ms
        if not interval:
            return None
        reporter = StatusPublisher(
            self.cfg.kafka, self.worker_id, self.member_record, interval_ms=interval
        )
        reporter.start()
        return reporter

    # ------------------------------------------------------------------ live quality

    def _start_quality_reader(self) -> ControlListener | None:
        """With the status page on: the monitor's quality records into ``self.live_quality``
        (shown per version next to the held-out metrics; :mod:`worker.live_quality`)."""
        if not self.cfg.http.enabled:
            return None
        reader = ControlListener(
            self.cfg.kafka,
            self.live_quality.add,
            topic=self.cfg.kafka.quality_topic,
            since_s=QUALITY_LOOKBACK_S,
        )
        reader.start()
        return reader

    # ------------------------------------------------------------------ callbacks

    def _swap_model(self) -> None:
        self.candidates.swap()
        swapped = swap_between_batches(self.reloader, self.model)
        if swapped is None:
            return
        self.activity.record_swap(self.model, swapped)
        self.model = swapped
        self.drift = self._make_drift(swapped)
        self.status.model = {
            "name": swapped.name,
            "version": swapped.version,
            "alias": swapped.alias,
            "seq": swapped.seq,
        }
        self.metrics.serving(swapped.name, swapped.version, swapped.alias)

    def _make_drift(self, model: ServingModel) -> WorkerDrift | None:
        profile = self.profile_of(model.version)
        if profile is None:
            return None
        m = self.cfg.monitor
        log.info("%s: counting drift against its reference profile", model.label)
        return WorkerDrift(
            profile,
            model=model.name,
            version=model.version,
            worker=self.worker_id,
            feature_names=[f.name for f in model.manifest.features],
            window_minutes=m.drift_window_minutes,
            min_events=m.drift_min_events,
            warn=m.drift_warn,
            alert=m.drift_alert,
        )

    def _on_reload_event(self, event: ReloadEvent) -> None:
        self.metrics.model_loads.labels(outcome=event.outcome).inc()

    def _on_notice(self, notice: dict[str, Any]) -> None:
        if notice.get("type") == MEMBER_STATUS:
            self.fleet.add(notice)
            return
        if (
            notice.get("type") == NOTICE_ALIAS_MOVED
            and notice.get("model") == self.store.name
            and notice.get("alias") == self.reloader.alias
        ):
            self.reloader.wake()
        if notice.get("type") == NOTICE_ALIAS_MOVED and notice.get("model") == self.store.name:
            self.candidates.wake(str(notice.get("alias")))

    def _on_ownership(self, owned: list[Partition], joined: bool) -> None:
        """The batcher applied rebalance events (on the scoring thread, right after a poll).

        The rebalance callbacks themselves only queue their partitions in the batcher
        (kafka-python 3 runs them on its network thread), after a revoke has finished the
        batches in flight (acknowledged, committed: :mod:`worker.pipeline`); the batcher drops
        what it gathered of revoked partitions, and their new owner scores those events from
        the committed offset: nothing is lost and nothing is scored twice.
        """
        self.status.assigned = owned
        self.metrics.partitions_assigned.set(len(owned))
        if joined:
            self._joined = True
            self.metrics.consumer_lag.clear()
            shown = ", ".join(f"{t}[{p}]" for t, p in owned) or "none"
            log.info("worker %s owns %s", self.worker_id, shown)
        else:
            self._joined = False
            self._waiting_since = time.monotonic()
            log.info("worker %s: partitions revoked, awaiting its assignment", self.worker_id)
