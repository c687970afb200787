"""Alias pointers (``aliases/<alias>.json``) and their append-only history.

Every move is one line in ``aliases/history.jsonl`` with a sequence number that only grows.
Per alias, the history replays as a stack: ``promote`` and ``register`` push the new target,
``rollback`` pops, so repeated rollbacks walk back through earlier targets and a rollback never
becomes the target of the next one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model_store.atomic import append_line, write_atomic
from streamscore import jsonio
from streamscore.exceptions import ModelStoreError

ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
HISTORY_FILE = "history.jsonl"


@dataclass(frozen=True)
class AliasEvent:
    """One alias move: ``action`` is ``register``, ``promote`` or ``rollback``."""

    seq: int
    alias: str
    action: str
    from_version: int | None
    to_version: int
    at: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_alias(alias: str) -> str:
    if not ALIAS_PATTERN.match(alias):
        raise ModelStoreError(
            f"invalid alias {alias!r}: use lower-case letters, digits, '-' and '_', "
            f"starting with a letter (e.g. production, candidate, shadow-2)"
        )
    if alias.isdigit():  # pragma: no cover - the pattern already forbids it
        raise ModelStoreError(f"alias {alias!r} would be confused with a version number")
    return alias


class AliasBook:
    """Reads and moves the alias pointers of one model. Callers hold the store's lock to move."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.history_file = folder / HISTORY_FILE

    def pointer_file(self, alias: str) -> Path:
        return self.folder / f"{alias}.json"

    def state(self, alias: str) -> tuple[int, int] | None:
        """``(version, seq)`` of an alias, or None when it is not set. One small file read."""
        try:
            raw = self.pointer_file(alias).read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = jsonio.loads(raw)
            return int(data["version"]), int(data["seq"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelStoreError(
                f"{self.pointer_file(alias)} is corrupt ({exc}); re-point the alias with "
                f"`streamscore models promote VERSION --alias {alias}`"
            ) from exc

    def all(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if not self.folder.is_dir():
            return out
        for path in sorted(self.folder.glob("*.json")):
            state = self.state(path.stem)
            if state is not None:
                out[path.stem] = state[0]
        return out

    def history(self, alias: str | None = None) -> list[AliasEvent]:
        if not self.history_file.is_file():
            return []
        events = []
        for line in self.history_file.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                event = AliasEvent(**jsonio.loads(line))
            except (ValueError, TypeError):
                continue  # a torn last line after a crash: the pointer files are the truth
            if alias is None or event.alias == alias:
                events.append(event)
        return events

    def stack(self, alias: str) -> list[int]:
        stack: list[int] = []
        for event in self.history(alias):
            if event.action == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append(event.to_version)
        return stack

    def move(
        self, alias: str, version: int, *, action: str, at: str, reason: str = ""
    ) -> AliasEvent:
        self.folder.mkdir(parents=True, exist_ok=True)
        events = self.history()
        seq = (events[-1].seq if events else 0) + 1
        current = self.state(alias)
        event = AliasEvent(
            seq=seq,
            alias=alias,
            action=action,
            from_version=current[0] if current else None,
            to_version=version,
            at=at,
            reason=reason,
        )
        append_line(self.history_file, jsonio.dumps(event.to_dict()))
        pointer = {"alias": alias, "version": version, "seq": seq, "updated_at": at}
        write_atomic(self.pointer_file(alias), jsonio.dumps_pretty(pointer))
        return event
