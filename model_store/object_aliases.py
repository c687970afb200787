"""Alias pointers on object storage: compare-and-swap moves, one history object per move.

Layout under the model's location::

    aliases/production.json                      {alias, version, seq, updated_at, event}
    aliases/history/000000000007.production.json one object per move, never rewritten

A move reads the pointer (and its ETag), replaces it only if the ETag is unchanged, and then
creates the move's history object. Of two concurrent moves exactly one replaces the pointer;
the other sees the new pointer on its retry and moves on from there, so the history is a chain
(each move's ``from_version`` is the previous move's ``to_version``). The pointer carries its
own move, so a writer that died between the two writes leaves nothing lost: the next reader of
the history, or the next move, creates the missing history object from the pointer
(create-if-absent, the same bytes whoever writes them).

The same interface as :class:`model_store.aliases.AliasBook` (the folder store's book).
"""

from __future__ import annotations

import logging
import random
import threading
import time

from model_store.aliases import AliasEvent, AliasMovedOn, check_alias, is_alias, stack_of
from model_store.storage import NOT_MODIFIED, Blob, Storage
from streamscore import jsonio
from streamscore.exceptions import ModelStoreError

log = logging.getLogger(__name__)

FOLDER = "aliases/"
HISTORY = "aliases/history/"
#: Moves retried after losing a compare-and-swap; then :class:`AliasConflict`.
MAX_ATTEMPTS = 20
RETRY_BASE_S = 0.01


class AliasConflict(ModelStoreError):
    """An alias kept moving under this writer: its compare-and-swap lost every attempt."""


class ObjectAliasBook:
    """Reads and moves the alias pointers of one model on a :class:`Storage`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._seen: dict[str, tuple[str, tuple[int, int]]] = {}  # alias -> (ETag, state)
        self._seen_lock = threading.Lock()

    def pointer_key(self, alias: str) -> str:
        return f"{FOLDER}{check_alias(alias)}.json"

    # ------------------------------------------------------------------ reading

    def _pointer(self, alias: str, blob: Blob) -> dict[str, object]:
        try:
            data = jsonio.loads(blob.data)
            int(data["version"]), int(data["seq"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelStoreError(
                f"{self.storage.where(self.pointer_key(alias))} is corrupt "
                f"({type(exc).__name__}: {exc}); re-point the alias with "
                f"`streamscore models promote VERSION --alias {alias}`"
            ) from exc
        return dict(data)

    def _read(self, alias: str) -> tuple[Blob | None, dict[str, object] | None]:
        blob = self.storage.read(self.pointer_key(alias))
        if not isinstance(blob, Blob):
            return None, None
        return blob, self._pointer(alias, blob)

    def state(self, alias: str) -> tuple[int, int] | None:
        """``(version, seq)``, None if unset. A pointer unchanged since the last call costs a
        conditional GET answered ``304 Not Modified``."""
        key = self.pointer_key(alias)
        with self._seen_lock:
            seen = self._seen.get(alias)
        blob = self.storage.read(key, if_none_match=seen[0] if seen else None)
        if blob is NOT_MODIFIED and seen is not None:
            return seen[1]
        if not isinstance(blob, Blob):
            with self._seen_lock:
                self._seen.pop(alias, None)
            return None
        data = self._pointer(alias, blob)
        state = (int(str(data["version"])), int(str(data["seq"])))
        with self._seen_lock:
            self._seen[alias] = (blob.etag, state)
        return state

    def all(self) -> dict[str, int]:
        """Every readable alias and its version; corrupt pointers are skipped with a warning."""
        out: dict[str, int] = {}
        for key in self.storage.keys(FOLDER):
            name = key[len(FOLDER) :]
            if "/" in name or not name.endswith(".json") or not is_alias(name[:-5]):
                continue
            try:
                state = self.state(name[:-5])
            except ModelStoreError as exc:
                log.warning("skipping alias %r: %s", name[:-5], exc)
                continue
            if state is not None:
                out[name[:-5]] = state[0]
        return out

    def history(self, alias: str | None = None) -> list[AliasEvent]:
        """Moves oldest first, of one alias or all. Unreadable objects are skipped with a
        warning; a move whose writer died before recording it is recorded from its pointer."""
        for name in [alias] if alias is not None else self.all():
            self._repair(name)
        events = []
        for key in self.storage.keys(HISTORY):
            if alias is not None and not key.endswith(f".{alias}.json"):
                continue  # another alias's move (the key names it): not read
            blob = self.storage.read(key)
            if not isinstance(blob, Blob):
                continue  # listed, then gone: nothing deletes history, but be safe
            try:
                event = AliasEvent.from_dict(jsonio.loads(blob.data))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s skipped: %s", self.storage.where(key), exc)
                continue
            if alias is None or event.alias == alias:
                events.append(event)
        events.sort(key=lambda e: (e.seq, e.alias))
        return events

    def stack(self, alias: str) -> list[int]:
        return stack_of(self.history(alias))

    def versions_named(self) -> set[int]:
        out: set[int] = set()
        for event in self.history():
            out.add(event.to_version)
            if event.from_version is not None:
                out.add(event.from_version)
        return out

    def current_seq(self, alias: str) -> int | None:
        """The seq of the pointer as stored now (no cache): compare before a planned move."""
        _, data = self._read(alias)
        return None if data is None else int(str(data["seq"]))

    # ------------------------------------------------------------------ moving

    @staticmethod
    def history_key(event: AliasEvent) -> str:
        return f"{HISTORY}{event.seq:012d}.{event.alias}.json"

    def _record(self, event: AliasEvent) -> None:
        self.storage.create(self.history_key(event), jsonio.dumps(event.to_dict()))

    def _repair(self, alias: str) -> None:
        """Record the pointer's own move if its writer died before it could."""
        _, data = self._read(alias)
        if data is None or not isinstance(data.get("event"), dict):
            return
        event = AliasEvent.from_dict(data["event"])
        if not self.storage.exists(self.history_key(event)):
            log.warning("recording %s move seq %d from its pointer", alias, event.seq)
            self._record(event)

    def _next_seq(self, current: dict[str, object] | None) -> int:
        seqs = []
        for key in self.storage.keys(HISTORY):
            head = key[len(HISTORY) :].partition(".")[0]
            if head.isdigit():
                seqs.append(int(head))
        if current is not None:
            seqs.append(int(str(current["seq"])))
        return max(seqs, default=0) + 1

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
        """Compare-and-swap the pointer, then record the move; retried when another writer
        moved the alias first. ``expect_seq``: move only from that pointer (a rollback planned
        on it), else :class:`AliasConflict` at once. ``forward_only`` (a registration): never
        move the alias back, :class:`AliasMovedOn` when it already points at a newer version
        (registrations on object storage are not serialised: a later one may finish first)."""
        for attempt in range(MAX_ATTEMPTS):
            blob, current = self._read(alias)
            if current is not None and isinstance(current.get("event"), dict):
                previous = AliasEvent.from_dict(current["event"])
                if not self.storage.exists(self.history_key(previous)):
                    self._record(previous)
            if expect_seq is not None and (
                current is None or int(str(current["seq"])) != expect_seq
            ):
                raise AliasConflict(
                    f"alias {alias!r} moved while this {action} was being planned; try again"
                )
            if forward_only and current is not None and int(str(current["version"])) > version:
                raise AliasMovedOn(
                    f"alias {alias!r} already points at v{current['version']}, newer than "
                    f"v{version}; left there"
                )
            event = AliasEvent(
                alias=alias,
                from_version=None if current is None else int(str(current["version"])),
                to_version=version,
                action=action,
                at=at,
                reason=reason,
                seq=self._next_seq(current),
            )
            pointer = {
                "alias": alias,
                "version": version,
                "seq": event.seq,
                "updated_at": at,
                "event": event.to_dict(),
            }
            etag = blob.etag if blob is not None else None
            if self.storage.replace(
                self.pointer_key(alias), jsonio.dumps_pretty(pointer), etag=etag
            ):
                self._record(event)
                return event
            time.sleep(RETRY_BASE_S * (2 ** min(attempt, 6)) * random.uniform(0.5, 1.5))
        raise AliasConflict(
            f"alias {alias!r} of {self.storage.location} was moved by other writers "
            f"{MAX_ATTEMPTS} times while this {action} to v{version} tried; nothing was "
            f"changed by it, try again"
        )
