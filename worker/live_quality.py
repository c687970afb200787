"""Live quality per model version, as ``streamscore monitor`` publishes it, for the status page.

The monitor publishes a record per changed window to ``[kafka] quality_topic``
(``{"type": "window", "model", "window_start_ms", "window_end_ms", "metrics", "cumulative",
"at"}``) and one per rollback decision (``{"type": "decision", ...}``). A worker that serves
its status page reads that topic from :data:`LOOKBACK_S` back (a
:class:`streamscore.control.ControlListener` on the quality topic) into a
:class:`LiveQualityBook`, and ``GET /fleet`` carries :meth:`LiveQualityBook.to_dict` under
``"quality"``: per version its held-out metrics (from its manifest), its cumulative live
metrics, its latest closed window, and the monitor's last decision. Nothing is computed here:
the monitor is the only judge.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

#: How far back the quality topic is read when a worker starts (a version's latest record may
#: be that old when it stopped scoring but labels kept coming).
LOOKBACK_S = 7 * 86_400
#: Windows kept per version (the newest closed one is shown).
WINDOWS_KEPT = 4


class LiveQualityBook:
    """The newest live metrics per version of ``model`` from the monitor's records."""

    def __init__(
        self,
        model: str,
        held_out: Callable[[int], Mapping[str, float]],
        *,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.model = model
        self.held_out = held_out
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._cumulative: dict[int, tuple[int, dict[str, Any]]] = {}  # version -> (at, metrics)
        self._windows: dict[int, dict[int, tuple[int, int, dict[str, Any]]]] = {}
        self._decision: dict[str, Any] | None = None
        self._candidates: dict[str, dict[str, Any]] = {}  # role -> the newest candidate record
        self._held_out: dict[int, dict[str, float]] = {}

    def add(self, record: Mapping[str, Any]) -> None:
        """One record of the quality topic; others' models and unknown types are ignored, an
        older record never replaces a newer one."""
        kind = record.get("type")
        try:
            if kind == "decision":  # the topic is this model's: decisions name no model
                with self._lock:
                    last = self._decision
                    if last is None or int(record.get("at", 0)) >= int(last.get("at", 0)):
                        self._decision = dict(record)
                return
            if kind == "candidate" and (record.get("model") or {}).get("name") == self.model:
                role = str(record["role"])
                int(record["model"]["version"]), int(record["production_version"])  # shaped?
                with self._lock:
                    last = self._candidates.get(role)
                    if last is None or int(record.get("at", 0)) >= int(last.get("at", 0)):
                        self._candidates[role] = dict(record)
                return
            if kind != "window" or (record.get("model") or {}).get("name") != self.model:
                return
            version = int(record["model"]["version"])
            at = int(record.get("at", 0))
            start, end = int(record["window_start_ms"]), int(record["window_end_ms"])
            with self._lock:
                if at >= self._cumulative.get(version, (-1, {}))[0]:
                    self._cumulative[version] = (at, dict(record.get("cumulative") or {}))
                windows = self._windows.setdefault(version, {})
                if at >= windows.get(start, (-1, 0, {}))[0]:
                    windows[start] = (at, end, dict(record.get("metrics") or {}))
                for old in sorted(windows)[:-WINDOWS_KEPT]:
                    del windows[old]
        except (KeyError, TypeError, ValueError, AttributeError):
            return  # not a record of the monitor's format

    def _held_out_of(self, version: int) -> dict[str, float]:
        if version not in self._held_out:
            try:
                self._held_out[version] = {k: float(v) for k, v in self.held_out(version).items()}
            except Exception:  # noqa: BLE001 - a version the store cannot show: no held-out
                return {}
        return self._held_out[version]

    def to_dict(self) -> dict[str, Any]:
        """``{"versions": {"7": {"held_out", "live", "window", "updated_ms"}}, "last_decision",
        "candidates": {"shadow": {"version", "production_version", "live", "production_live"}}}``;
        ``window`` is the newest closed window (``None`` before one closes); a candidate's
        ``production_live`` is production's on the same ids (shadow) or the rest (canary)."""
        now = self.clock_ms()
        with self._lock:
            cumulative = dict(self._cumulative)
            windows = {v: dict(w) for v, w in self._windows.items()}
            decision = self._decision
            candidates = {role: dict(r) for role, r in self._candidates.items()}
        versions: dict[str, Any] = {}
        for version in sorted(cumulative):
            at, live = cumulative[version]
            closed = [(s, e, m) for s, (_, e, m) in windows.get(version, {}).items() if e <= now]
            window = None
            if closed:
                start, end, metrics = max(closed)
                window = {"start_ms": start, "end_ms": end, "metrics": metrics}
            versions[str(version)] = {
                "held_out": self._held_out_of(version),
                "live": live,
                "window": window,
                "updated_ms": at,
            }
        shown = {
            role: {
                "alias": r.get("alias"),
                "version": int(r["model"]["version"]),
                "production_version": int(r["production_version"]),
                "live": dict(r.get("cumulative") or {}),
                "production_live": dict(r.get("production_cumulative") or {}),
                "updated_ms": int(r.get("at", 0)),
            }
            for role, r in sorted(candidates.items())
        }
        return {"versions": versions, "last_decision": decision, "candidates": shown}
