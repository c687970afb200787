"""The optional side steps of a batch, guarded: what one raises never stops the batch.

After the processor scored a batch, the worker adds work of its own that depends on the
batch's content: drift counting (its finished minutes ride along to the monitoring topic), the
shadow's predictions (to the shadow topic) and, when the broker refuses an output for good, the
``publish`` dead letter that replaces it (:mod:`worker.refusals`). None of that is the batch's
delivery. An exception in one of them, uncaught, would escape the batch: the batch would never
be committed and the worker (or the supervisor's next child) would read it again, forever.

So each side step runs under :meth:`SideSteps.run`: on an exception its output for that batch
is dropped (the records it had appended are taken back), the failure is counted in
``streamscore_side_step_failures_total{step}`` and logged with its traceback once per distinct
reason (the same bug on every batch logs once, not once a batch); the batch's predictions and
dead letters are published and its offsets committed as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from streamscore.wire import OutRecord
from worker.processor import BatchResult
from worker.transport import Refused

log = logging.getLogger(__name__)

#: Distinct failure reasons logged in full; beyond that, new reasons are only counted.
_REASONS_LOGGED = 100


class _CounterFamily(Protocol):
    def labels(self, *values: str) -> Any: ...


class SideSteps:
    """Runs a batch's side steps, counting failures in ``failures`` (labelled by step)."""

    def __init__(self, failures: _CounterFamily) -> None:
        self._failures = failures
        self._logged: set[tuple[str, str, str]] = set()
        self._full = False

    def run(self, step: str, result: BatchResult, call: Callable[[], object]) -> bool:
        """``call()``; False when it raised: the records it appended to ``result.records``
        are removed again (that batch goes without this step's output)."""
        kept = len(result.records)
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - any failure of an optional step, by design
            del result.records[kept:]
            self.failed(step, exc)
            return False
        return True

    def guard_replacer(
        self, replace: Callable[[list[Refused]], list[OutRecord]]
    ) -> Callable[[list[Refused]], list[OutRecord]]:
        """``replace`` (dead letters for outputs refused for good) that returns no
        replacement when it raises: the refused outputs are then dropped with an error in the
        log (:func:`worker.commit.settle_then_commit`) and the batch is committed."""

        def guarded(refused: list[Refused]) -> list[OutRecord]:
            try:
                return replace(refused)
            except Exception as exc:  # noqa: BLE001 - any failure of an optional step, by design
                self.failed("replace-refused", exc)
                return []

        return guarded

    def failed(self, step: str, exc: Exception) -> None:
        self._failures.labels(step).inc()
        reason = (step, type(exc).__name__, str(exc)[:200])
        if reason in self._logged:
            return
        if len(self._logged) >= _REASONS_LOGGED:
            if not self._full:
                self._full = True
                log.error(
                    "%d distinct side-step failures logged; new ones are only counted",
                    _REASONS_LOGGED,
                )
            return
        self._logged.add(reason)
        log.error(
            "%s failed for a batch and was skipped for it (%s: %s); the batch is published and "
            "committed all the same. Logged once per reason: see "
            "streamscore_side_step_failures_total{step=%r} for how often",
            step,
            reason[1],
            reason[2],
            step,
            exc_info=exc,
        )
