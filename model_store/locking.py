"""An exclusive inter-process lock on a file (``fcntl.flock``), waiting up to a timeout."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from streamscore.exceptions import ModelStoreError


@contextlib.contextmanager
def exclusive_lock(path: Path, *, timeout_ms: int, what: str = "the model store") -> Iterator[None]:
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
                        f"another writer holds {path} for {what} for more than {timeout_ms} ms; "
                        f"wait for it to finish or raise [model_store] lock_timeout_ms"
                    ) from None
                time.sleep(0.01)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
