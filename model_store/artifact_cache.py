"""A worker's local copy of the artifacts it loads from object storage.

``<cache_dir>/<name>/<version>/<artifact>``: versions are immutable, so each is downloaded
once and kept. A copy is written through a temporary file and renamed into place, so a crash
never leaves half of one. It is still verified on every load (the store checks the sha256
against the manifest before unpickling); a copy that does not match its manifest any more is
dropped and downloaded again, once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from model_store.atomic import write_atomic
from model_store.manifest import Manifest

log = logging.getLogger(__name__)


class ArtifactCache:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"ArtifactCache({str(self.folder)!r})"

    def path(self, manifest: Manifest) -> Path:
        return self.folder / str(manifest.version) / manifest.artifact

    def get(self, manifest: Manifest, download: Callable[[], bytes]) -> bytes:
        """The artifact's bytes from the cache, else from ``download()`` (then cached)."""
        path = self.path(manifest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            pass
        else:
            if hashlib.sha256(data).hexdigest() == manifest.sha256:
                return data
            log.warning(
                "cached %s does not match its manifest's sha256; downloading it again", path
            )
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        data = download()
        if hashlib.sha256(data).hexdigest() == manifest.sha256:  # never cache a bad copy
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        return data
