"""Never two training runs at once for one model, whoever starts them.

The CLI, the retraining service and the schedule all call :func:`train`, which holds an
exclusive, non-blocking ``fcntl.flock`` on ``<model_store.root>/<model_name>/.training.lock``
for the whole run. The lock belongs to the open file, so it also excludes a second run in
another thread of the same process, and the kernel releases it when the holder dies (even
``kill -9``): there is no stale lock to clean up. The holder writes its pid into the file so
the refusal can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from streamscore.config import Config
from streamscore.exceptions import TrainingError

LOCK_FILE = ".training.lock"


def training_lock_path(cfg: Config) -> Path:
    """``<model_store.root>/<model_name>/.training.lock`` (an object store: under
    ``cache_dir``, so the lock covers the runs started on this host)."""
    return cfg.model_store.local_root / cfg.model_store.model_name / LOCK_FILE


@contextlib.contextmanager
def training_lock(path: Path) -> Iterator[None]:
    """Hold the training lock at ``path`` or raise :class:`TrainingError` at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise TrainingError(
                f"another training run holds {path} (pid {holder}); wait for it to finish, "
                f"or stop it, then try again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold_training_lock(cfg: Config) -> Iterator[Path]:
    """:func:`training_lock` on the configured model's lock file; yields its path."""
    path = training_lock_path(cfg)
    with training_lock(path):
        yield path
