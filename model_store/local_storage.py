"""A model's objects in a local folder (the default store): atomic renames and a lock file.

A version is written into ``.tmp-<uuid>/`` and renamed to ``<version>/`` when complete, so a
reader sees all of it or nothing; single files are replaced through a temporary file and
``os.replace`` (or linked into place for create-if-absent). Writers are serialised by an
``fcntl`` lock on ``.lock`` (:mod:`model_store.locking`). ETags are the sha256 of the content.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from model_store.atomic import fsync_path, write_atomic
from model_store.locking import exclusive_lock
from model_store.storage import NOT_MODIFIED, Blob, NotModified, is_version_name

TMP_PREFIX = ".tmp-"
LOCK_FILE = ".lock"
CAS_LOCK_FILE = ".cas.lock"  # held only inside replace(), never with LOCK_FILE's holder waiting


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStorage:
    """One model's folder (``<root>/<name>``)."""

    locks_writers = True

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.location = str(self.folder)

    def __repr__(self) -> str:
        return f"LocalStorage({self.location!r})"

    def _path(self, key: str) -> Path:
        return self.folder.joinpath(*key.split("/"))

    def where(self, key: str) -> str:
        return str(self._path(key))

    def read(self, key: str, *, if_none_match: str | None = None) -> Blob | NotModified | None:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        etag = _etag(data)
        if if_none_match is not None and etag == if_none_match:
            return NOT_MODIFIED
        return Blob(data, etag)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)  # atomic, and fails if the name exists
            except FileExistsError:
                return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_path(path.parent)
        return True

    def replace(self, key: str, data: bytes, *, etag: str | None) -> bool:
        path = self._path(key)
        with exclusive_lock(self.folder / CAS_LOCK_FILE, timeout_ms=30_000, what=self.location):
            current = self.read(key)
            current_etag = current.etag if isinstance(current, Blob) else None
            if current_etag != etag:
                return False
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        return True

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self.folder
        if not base.is_dir():
            return []
        out = []
        for path in base.rglob("*"):
            relative = path.relative_to(self.folder)
            if path.is_file() and not any(p.startswith(".") for p in relative.parts):
                out.append("/".join(relative.parts))
        return sorted(out)

    def publish(self, version: int, files: Mapping[str, bytes]) -> bool:
        """Write into ``.tmp-<uuid>/``, fsync, rename to ``<version>/``. Callers hold the lock."""
        target = self.folder / str(version)
        if target.exists():
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            for name, data in files.items():
                path = staging / name
                path.write_bytes(data)
                fsync_path(path)
            fsync_path(staging)
            staging.rename(target)
            fsync_path(self.folder)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return True

    def versions(self) -> list[int]:
        """Complete version folders; ``.tmp-*`` folders (writes in progress) are not versions."""
        if not self.folder.is_dir():
            return []
        return sorted(
            int(p.name) for p in self.folder.iterdir() if is_version_name(p.name) and p.is_dir()
        )

    def claimed_versions(self) -> set[int]:
        return set(self.versions())

    @contextlib.contextmanager
    def writer_lock(self, *, timeout_ms: int, what: str) -> Iterator[None]:
        with exclusive_lock(self.folder / LOCK_FILE, timeout_ms=timeout_ms, what=what):
            yield
