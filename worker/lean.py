"""Keep a worker process lean: libraries it does not need stay out of its memory, and a
model's native thread pools stay at the size ``[worker] model_threads`` sets.

scikit-learn imports pandas (and pandas imports pyarrow) whenever they are installed, although
a model that scores numpy matrices, as every pipeline ``streamscore train`` builds does, never
uses them: about 60 MB per worker process (measured: 199 -> 136 MB after imports). A worker
process started by ``python -m worker run`` skips them unless ``[worker] import_pandas = true``.
A model fitted on a DataFrame (it has ``feature_names_in_``) is given DataFrames, so serving one
lifts the skip with :func:`allow_pandas` and pandas loads in that process only. Any other model
that needs pandas to predict is refused at load with a message naming the key, and the model
being served keeps serving.
"""

from __future__ import annotations

import importlib
import importlib.abc
import os
import sys
from collections.abc import MutableMapping, Sequence
from types import ModuleType
from typing import Any

#: Installed for training, never needed to score numpy matrices.
SKIPPED = ("pandas", "pyarrow")
_MARK = "skipped in worker processes"


class _Skip(importlib.abc.MetaPathFinder):
    """An import finder that answers 'not installed' for the skipped packages."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if fullname.partition(".")[0] in SKIPPED:
            raise ModuleNotFoundError(f"No module named {fullname!r} ({_MARK})", name=fullname)
        return None


def skip_pandas() -> list[str]:
    """Make ``import pandas`` / ``import pyarrow`` fail in this process as if they were not
    installed (libraries treat them as optional). Call before scikit-learn is imported;
    returns the names skipped (none when one is already imported)."""
    if any(name in sys.modules for name in SKIPPED):
        return []
    if not any(isinstance(finder, _Skip) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Skip())
    return list(SKIPPED)


def allow_pandas() -> bool:
    """Undo :func:`skip_pandas` in this process (a model fitted on a DataFrame is served) and
    import pandas; True when it was skipped until now."""
    skips = [finder for finder in sys.meta_path if isinstance(finder, _Skip)]
    for finder in skips:
        sys.meta_path.remove(finder)
    importlib.import_module("pandas")
    return bool(skips)


def hint(message: str) -> str:
    """The fix for a load or predict failure caused by :func:`skip_pandas`."""
    if _MARK in message:
        return (
            f"{message}: this model needs pandas to predict; set [worker] import_pandas = true "
            "(worker processes skip pandas/pyarrow by default to save ~60 MB each)"
        )
    return message


#: Environment variables that size the thread pools of the native libraries models run on:
#: OpenMP (HistGradientBoosting, k-means, ...), OpenBLAS (numpy/scipy linear algebra), MKL.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: Libraries that read those variables once, when they are first loaded.
_THREAD_READERS = ("numpy", "scipy", "sklearn")


def limit_model_threads(
    threads: int, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Size the model's native thread pools in this process to ``threads`` (0: leave them).

    OpenMP and OpenBLAS read these variables when they are loaded, so this must run before
    numpy is imported; it raises otherwise rather than silently having no effect. Returns
    the variables set. Child processes inherit them.
    """
    if threads <= 0:
        return {}
    env = os.environ if environ is None else environ
    if environ is None:
        loaded = [name for name in _THREAD_READERS if name in sys.modules]
        if loaded:
            raise RuntimeError(
                f"limit_model_threads() called after {', '.join(loaded)} was imported: "
                "call it first thing in the worker process"
            )
    values = {name: str(threads) for name in THREAD_VARIABLES}
    env.update(values)
    return values
