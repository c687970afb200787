"""Run a version's examples (``[training] examples``, ``models import --examples``) on a
fitted model before it is registered, the way every worker runs them at load.

The one module of ``training`` that reaches into the worker: the examples go through the
worker's own validation and scoring path, so "dead-lettered at stage schema" means exactly what
a worker would do (see the import contract in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_store import FeatureSpec
from model_store.examples import Example, read_examples
from streamscore.config import Config
from streamscore.exceptions import ModelStoreError, TrainingError
from worker.examples import ExamplesReport, run_on_model
from worker.validation import ValidationPolicy

__all__ = ["ExamplesReport", "load_examples", "run_examples"]


def load_examples(path: Path | None, *, what: str) -> tuple[bytes, list[Example]] | None:
    """The file's bytes (stored with the version) and its examples; None without a path.
    A malformed file is a :class:`TrainingError` naming ``what`` (the key or flag)."""
    if path is None:
        return None
    try:
        return read_examples(path)
    except ModelStoreError as exc:
        raise TrainingError(f"{what}: {exc}") from exc


def run_examples(
    cfg: Config,
    model: Any,
    examples: Sequence[Example],
    *,
    task: str,
    features: Sequence[FeatureSpec],
    classes: Sequence[Any] | None,
) -> ExamplesReport:
    """The candidate on ``examples``, validated with the ``[worker]`` policy."""
    w = cfg.worker
    return run_on_model(
        model,
        examples,
        task=task,
        features=features,
        classes=classes,
        policy=ValidationPolicy.from_config(w),
        allowed_extra=(w.id_field, *w.passthrough),
    )
