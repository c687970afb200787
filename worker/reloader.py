"""Follow a model-store alias and prepare the model it points at, off the scoring thread.

A background thread checks the alias pointer every ``poll_ms`` (one small file read) and
immediately when woken (a notice on the control topic, or ``POST /reload``). When the alias
moves, it loads and verifies the new version (signature, checksums, trusted types or
``allow_pickle``, library versions, schema, one smoke prediction, then every example stored
with the version) and hands it over; the scoring loop swaps between batches. A version that
fails any of it is refused and logged once, before any of its objects is built when the
artifact itself is refused; the current model keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from model_store import ModelStore, StoreUnavailable
from streamscore.exceptions import StreamscoreError
from worker.examples import check_examples, stored_examples
from worker.lean import hint
from worker.processor import ServingModel
from worker.validation import ValidationPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadEvent:
    """What happened on a check: ``loaded`` or ``refused`` (with the reason)."""

    outcome: str
    alias: str
    version: int | None
    reason: str = ""


class ModelReloader:
    def __init__(
        self,
        store: ModelStore,
        alias: str,
        policy: ValidationPolicy,
        *,
        poll_ms: int = 200,
        allowed_extra: Sequence[str] = (),
        on_event: Callable[[ReloadEvent], None] | None = None,
    ) -> None:
        self.store = store
        self.alias = alias
        self.policy = policy
        self.poll_s = poll_ms / 1000
        self.allowed_extra = tuple(allowed_extra)
        self.on_event = on_event
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._pending: ServingModel | None = None
        self._latest: ServingModel | None = None
        self._seen: tuple[int, int] | None = None  # (version, seq) last loaded or refused
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_problem = ""

    # ------------------------------------------------------------------ scoring-thread side

    def take_pending(self) -> ServingModel | None:
        """The model to swap in, once; ``None`` when nothing changed."""
        with self._lock:
            model, self._pending = self._pending, None
            return model

    @property
    def latest(self) -> ServingModel | None:
        """The newest model that passed verification (what the worker serves or will next)."""
        return self._latest

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        self.check()
        self._thread = threading.Thread(target=self._run, name="model-reloader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wake(self) -> None:
        """Check the alias now (a control-topic notice or an admin request)."""
        self._wake.set()

    def wait_for_model(self, stop: threading.Event, *, log_every_s: float = 10.0) -> bool:
        """Block until a model is loadable (True) or ``stop`` is set (False)."""
        waited = 0.0
        while not stop.is_set():
            if self._latest is not None:
                return True
            if waited == 0.0 or waited >= log_every_s:
                log.warning(
                    "no servable model for %s alias %r yet (%s); waiting, not consuming. "
                    "Train one with `streamscore train` or promote one with "
                    "`streamscore models promote VERSION`",
                    self.store.name,
                    self.alias,
                    self.last_problem or "alias not set",
                )
                waited = 0.0
            stop.wait(self.poll_s)
            waited += self.poll_s
        return False

    # ------------------------------------------------------------------ internals

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception:  # the reloader must never die; log and keep polling
                log.exception("model reload check failed")

    def check(self) -> ReloadEvent | None:
        """Look at the alias once; load and verify a new target. Returns what happened.

        Safe to call from any thread (the reloader's own, or an HTTP ``/reload``).
        """
        with self._check_lock:
            return self._check()

    def _check(self) -> ReloadEvent | None:
        try:
            state = self.store.alias_state(self.alias)
        except StreamscoreError as exc:
            self.last_problem = str(exc)
            return None
        if state is None:
            self.last_problem = f"alias {self.alias!r} is not set"
            return None
        if state == self._seen:
            return None
        version, seq = state
        try:
            loaded = self.store.load(version)
            model = ServingModel(
                loaded, self.policy, alias=self.alias, seq=seq, allowed_extra=self.allowed_extra
            )
            model.smoke_test()
            examples = stored_examples(self.store, loaded.manifest)
            if examples is not None:
                check_examples(model, examples)
        except StoreUnavailable as exc:  # the store's outage, not the version's fault: retry
            self.last_problem = f"version {version} not loaded yet: {exc}"
            return None
        except Exception as exc:  # noqa: BLE001
            self._seen = state
            reason = hint(f"{type(exc).__name__}: {exc}")
            self.last_problem = f"version {version} refused: {reason}"
            current = self._latest.label if self._latest else "nothing"
            log.error(
                "refused %s v%s for alias %r: %s; still serving %s",
                self.store.name,
                version,
                self.alias,
                reason,
                current,
            )
            event = ReloadEvent("refused", self.alias, version, reason)
        else:
            self._seen = state
            self.last_problem = ""
            with self._lock:
                self._pending = model
                self._latest = model
            log.info("loaded %s for alias %r (seq %d)", model.label, self.alias, seq)
            event = ReloadEvent("loaded", self.alias, version)
        if self.on_event is not None:
            self.on_event(event)
        return event
