"""Alias pointers (``aliases/<alias>.json``) and their append-only history.

A pointer file holds ``{alias, version, seq, updated_at}`` and is replaced atomically, so a
reader (a worker polling every few hundred ms) sees the old pointer or the new one.

Every move is first appended to ``aliases/history.jsonl`` (one JSON object per line, ``seq``
only grows), then the pointer is replaced. Per alias the history replays as a stack:
``register`` and ``promote`` push the new target, ``rollback`` pops. So repeated rollbacks walk
further back, and a rollback never becomes the target of the next one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model_store.atomic import append_line, write_atomic
from streamscore import jsonio
from streamscore.exceptions import ModelStoreError

log = logging.getLogger(__name__)

ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,63}")
HISTORY_FILE = "history.jsonl"
ACTIONS = ("register", "promote", "rollback")


@dataclass(frozen=True)
class AliasEvent:
    """One alias move. ``action`` is ``register``, ``promote`` or ``rollback``;
    ``from_version`` is None when the alias was not set before."""

    alias: str
    from_version: int | None
    to_version: int
    action: str
    at: str  # ISO 8601, UTC
    reason: str
    seq: int  # grows with every move of any alias of this model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> AliasEvent:
        event = cls(
            alias=str(data["alias"]),
            from_version=None if data["from_version"] is None else int(data["from_version"]),
            to_version=int(data["to_version"]),
            action=str(data["action"]),
            at=str(data["at"]),
            reason=str(data.get("reason", "")),
            seq=int(data["seq"]),
        )
        if event.action not in ACTIONS:
            raise ValueError(f"unknown action {event.action!r}")
        return event


def is_alias(name: str) -> bool:
    return ALIAS_PATTERN.fullmatch(name) is not None


def check_alias(alias: str) -> str:
    if not is_alias(alias):
        raise ModelStoreError(
            f"invalid alias {alias!r}: use lower-case letters, digits, '-' and '_', "
            f"starting with a letter, at most 64 characters (e.g. production, candidate, shadow-2)"
        )
    return alias


def stack_of(events: list[AliasEvent]) -> list[int]:
    """One alias's moves replayed as a stack: the top is the current target, below it the
    rollback targets. Moving to the version already on top pushes nothing."""
    stack: list[int] = []
    for event in events:
        if event.action == "rollback":
            if stack:
                stack.pop()
        elif not stack or stack[-1] != event.to_version:
            stack.append(event.to_version)
    return stack


class AliasMovedOn(ModelStoreError):
    """A forward-only move found the alias already on a newer version (nothing was changed)."""


class AliasBook:
    """Reads and moves the alias pointers of one model. Callers hold the store's lock to move."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.history_file = folder / HISTORY_FILE

    def pointer_file(self, alias: str) -> Path:
        return self.folder / f"{check_alias(alias)}.json"

    def state(self, alias: str) -> tuple[int, int] | None:
        """``(version, seq)`` of an alias, or None when it is not set. One small file read."""
        path = self.pointer_file(alias)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = jsonio.loads(raw)
            return int(data["version"]), int(data["seq"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelStoreError(
                f"{path} is corrupt ({type(exc).__name__}: {exc}); re-point the alias with "
                f"`streamscore models promote VERSION --alias {alias}`"
            ) from exc

    def all(self) -> dict[str, int]:
        """Every readable alias and its version; corrupt pointers are skipped with a warning."""
        out: dict[str, int] = {}
        if not self.folder.is_dir():
            return out
        for path in sorted(self.folder.glob("*.json")):
            if not is_alias(path.stem):
                continue
            try:
                state = self.state(path.stem)
            except ModelStoreError as exc:
                log.warning("skipping alias %r: %s", path.stem, exc)
                continue
            if state is not None:
                out[path.stem] = state[0]
        return out

    def history(self, alias: str | None = None) -> list[AliasEvent]:
        """Moves oldest first, of one alias or all. Unreadable lines (a torn write after a
        crash) are skipped with a warning: the pointer files are the truth for the present."""
        try:
            raw = self.history_file.read_bytes()
        except FileNotFoundError:
            return []
        events = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                event = AliasEvent.from_dict(jsonio.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s line %d skipped: %s", self.history_file, number, exc)
                continue
            if alias is None or event.alias == alias:
                events.append(event)
        return events

    def stack(self, alias: str) -> list[int]:
        """The alias's targets as a stack (:func:`stack_of`)."""
        return stack_of(self.history(alias))

    def move(
        self,
        alias: str,
        version: int,
        *,
        action: str,
        at: str,
        reason: str = "",
        expect_seq: int | None = None,
        forward_only: bool = False,
    ) -> AliasEvent:
        """Record the move in the history, then replace the pointer atomically.

        ``expect_seq`` and ``forward_only`` are checked for the same interface as the object
        store's book; under the store's lock nobody else moves the alias (and registrations
        are numbered in order), so they hold unless the files were edited."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        self.folder.mkdir(parents=True, exist_ok=True)
        events = self.history()
        current = self.state(alias)
        if expect_seq is not None and (current is None or current[1] != expect_seq):
            raise ModelStoreError(
                f"alias {alias!r} moved while this {action} was being planned; try again"
            )
        if forward_only and current is not None and current[0] > version:
            raise AliasMovedOn(
                f"alias {alias!r} already points at v{current[0]}, newer than v{version}; "
                f"left there"
            )
        seq = max([e.seq for e in events] + [current[1] if current else 0]) + 1
        event = AliasEvent(
            alias=alias,
            from_version=current[0] if current else None,
            to_version=version,
            action=action,
            at=at,
            reason=reason,
            seq=seq,
        )
        append_line(self.history_file, jsonio.dumps(event.to_dict()))
        pointer = {"alias": alias, "version": version, "seq": seq, "updated_at": at}
        write_atomic(self.pointer_file(alias), jsonio.dumps_pretty(pointer))
        return event

    def versions_named(self) -> set[int]:
        """Every version the history mentions (so numbers of deleted versions are not reused)."""
        out: set[int] = set()
        for event in self.history():
            out.add(event.to_version)
            if event.from_version is not None:
                out.add(event.from_version)
        return out
