"""Where a model's objects live: a local folder or an S3 bucket, behind one small protocol.

The store (:mod:`model_store.store`) speaks only in keys relative to one model's location
(``"3/manifest.json"``, ``"aliases/production.json"``) and only through these operations, each
of which both backends carry out atomically:

* :meth:`Storage.read` -> :class:`Blob` (bytes and an ETag) or None; with ``if_none_match`` it
  answers :data:`NOT_MODIFIED` without a body when the object still has that ETag (a worker's
  cheap poll of its alias pointer);
* :meth:`Storage.create` writes an object only if it does not exist yet (S3 ``If-None-Match: *``);
* :meth:`Storage.replace` is compare-and-swap on the ETag read (S3 ``If-Match``);
* :meth:`Storage.publish` makes a version's files visible all at once, or not at all, and never
  over an existing version: a folder renamed into place, or on S3 a claim object created
  conditionally, then the files, then the manifest last (the commit point);
* :meth:`Storage.keys` lists, :meth:`Storage.versions` / :meth:`Storage.claimed_versions` give
  the committed version numbers and every number ever taken (numbers are never reused).

Writers of a folder store are serialised by a lock file (:meth:`Storage.writer_lock`); an object
store has no lock and relies on the conditional writes instead.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from streamscore.exceptions import ModelStoreError


@dataclass(frozen=True)
class Blob:
    """An object's bytes and the ETag they had when read (compare-and-swap token)."""

    data: bytes
    etag: str


class NotModified(enum.Enum):
    NOT_MODIFIED = "not modified"


#: :meth:`Storage.read` with ``if_none_match`` equal to the object's current ETag.
NOT_MODIFIED = NotModified.NOT_MODIFIED


class StoreUnavailable(ModelStoreError):
    """The storage behind the model store cannot be reached (network, endpoint, outage)."""


class Storage(Protocol):
    """The objects of one model (see the module docstring). Keys use ``/`` and are relative."""

    #: ``/srv/models/fraud`` or ``s3://bucket/prefix/fraud``: for messages and ``repr``.
    location: str

    #: True for a store that serialises writers with :meth:`writer_lock` (a folder).
    locks_writers: bool

    def where(self, key: str) -> str:
        """Where ``key`` lives, for messages (a path or an ``s3://`` URL)."""
        ...

    def read(self, key: str, *, if_none_match: str | None = None) -> Blob | NotModified | None:
        """The object, None if absent, :data:`NOT_MODIFIED` if its ETag is ``if_none_match``."""
        ...

    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist; False (nothing written) if it does."""
        ...

    def replace(self, key: str, data: bytes, *, etag: str | None) -> bool:
        """Compare-and-swap: write ``key`` only if its ETag is still ``etag`` (None: only if
        it does not exist). False, with nothing written, when another writer got there first."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (``"aliases/"``), sorted."""
        ...

    def exists(self, key: str) -> bool: ...

    def publish(self, version: int, files: Mapping[str, bytes]) -> bool:
        """Make ``<version>/<name>`` for every file visible together; the last file of
        ``files`` is the commit point. False (nothing visible) if the number is taken."""
        ...

    def versions(self) -> list[int]:
        """Committed version numbers, ascending."""
        ...

    def claimed_versions(self) -> set[int]:
        """Every version number taken, committed or not (a crashed write keeps its number)."""
        ...

    def writer_lock(self, *, timeout_ms: int, what: str) -> contextlib.AbstractContextManager[None]:
        """Exclusive writer lock (a folder store); a no-op where conditional writes suffice."""
        ...


def is_version_name(name: str) -> bool:
    """``"3"`` yes; ``"03"``, ``"0"``, ``"x"`` no."""
    return name.isascii() and name.isdigit() and not name.startswith("0")
