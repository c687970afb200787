"""An exclusive inter-process lock on a file (``fcntl.flock``), waiting up to a timeout.

The lock belongs to an open file description, so two threads of one process exclude each other
as well as two processes. The kernel drops it when its holder dies: no stale locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from streamscore.exceptions import ModelStoreError

POLL_INTERVAL_S = 0.01


@contextlib.contextmanager
def exclusive_lock(path: Path, *, timeout_ms: int, what: str = "the model store") -> Iterator[None]:
    """Hold ``path`` exclusively; :class:`ModelStoreError` after ``timeout_ms`` of waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ModelStoreError(
                        f"{what} is locked by another writer ({_holder(path)}) for more than "
                        f"{timeout_ms} ms ({path}); retry when it has finished, or raise "
                        f"[model_store] lock_timeout_ms"
                    ) from None
                time.sleep(POLL_INTERVAL_S)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"
