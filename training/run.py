"""The training flow: load → cleanse → schema → split → fit → evaluate → register → gate → promote.

Each step is a function of its own module; this one strings them together, records everything
in the manifest, and shows progress.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from model_store import Manifest, ModelStore, current_git_commit
from streamscore.config import Config
from streamscore.exceptions import GateFailed, StreamscoreError
from training.cleanse import CleanseReport, cleanse
from training.data import fingerprint, load_frame
from training.evaluate import evaluate, split
from training.features import derive_schema, feature_matrix
from training.gate import GateVerdict, judge
from training.lock import training_lock
from training.pipeline import build_pipeline, describe

log = logging.getLogger(__name__)

STEPS = ("load", "cleanse", "split", "fit", "evaluate", "register", "gate", "promote")


@dataclass
class TrainResult:
    manifest: Manifest
    verdict: GateVerdict
    report: CleanseReport
    metrics: dict[str, float]
    promoted: bool
    seconds: float


def _labels(values: np.ndarray[Any, Any]) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values]


class _Steps:
    """A progress display with one line per step (or plain log lines without a terminal)."""

    def __init__(self, progress: Progress | None, on_step: Callable[[str], None] | None) -> None:
        self.progress = progress
        self.on_step = on_step
        self.task = progress.add_task("training", total=len(STEPS)) if progress else None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=f"training: {name}")
        if self.on_step is not None:
            self.on_step(name)
        started = time.perf_counter()
        yield
        log.info("step %s done in %.2fs", name, time.perf_counter() - started)
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task)


def train(
    cfg: Config,
    *,
    promote: bool = True,
    progress: bool = True,
    data_path: Path | None = None,
    on_step: Callable[[str], None] | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Run the whole flow. Raises :class:`GateFailed` when the gate refuses (after registering
    the candidate), :class:`TrainingError` for data problems."""
    store = ModelStore.from_config(cfg)
    t = cfg.training
    path = data_path or t.data_path
    started = time.perf_counter()
    display = (
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        if progress
        else None
    )
    with training_lock(store.folder / ".training.lock"):
        if display is not None:
            display.start()
        try:
            steps = _Steps(display, on_step)
            with steps.step("load"):
                frame = load_frame(path)
                rows_read = len(frame)
            with steps.step("cleanse"):
                frame, report = cleanse(
                    frame,
                    label=t.label_column,
                    id_column=t.id_column,
                    keep_text=set(t.categorical_columns),
                )
                schema = derive_schema(
                    frame,
                    label=t.label_column,
                    id_column=t.id_column,
                    drop=t.drop_columns,
                    categorical=t.categorical_columns,
                )
                X = feature_matrix(frame, schema)
                y = frame[t.label_column].to_numpy()
                if t.task == "regression":
                    y = y.astype(np.float64)
            with steps.step("split"):
                X_train, X_test, y_train, y_test = split(
                    X, y, task=t.task, test_size=t.test_size, seed=t.seed
                )
            with steps.step("fit"):
                pipeline = build_pipeline(t, schema)
                try:
                    pipeline.fit(X_train, y_train)
                except Exception as exc:
                    raise StreamscoreError(
                        f"fitting {t.estimator} failed: {type(exc).__name__}: {exc}"
                    ) from exc
            with steps.step("evaluate"):
                metrics = evaluate(pipeline, X_test, y_test, task=t.task)
                production_metrics, problem, production_version = _production_metrics(
                    store, cfg, [f.name for f in schema], X_test, y_test
                )
            with steps.step("register"):
                classes = _labels(pipeline.classes_) if t.task == "classification" else None
                manifest = store.register(
                    pipeline,
                    task=t.task,
                    features=schema,
                    classes=classes,
                    metrics=metrics,
                    estimator=describe(t),
                    data=fingerprint(path, rows_read),
                    config=cfg.to_dict(),
                    git_commit=current_git_commit(Path(__file__).resolve().parent),
                    parent=production_version,
                )
            with steps.step("gate"):
                verdict = judge(
                    t.gate,
                    metrics,
                    production=production_metrics,
                    production_label=(
                        f"production v{production_version}" if production_version else "production"
                    ),
                    production_problem=problem,
                )
            promoted = False
            with steps.step("promote"):
                if promote and verdict.passed:
                    store.promote(manifest.version, cfg.model_store.alias, reason="gate passed")
                    promoted = True
                    _announce(cfg, store.name, manifest.version)
        finally:
            if display is not None:
                display.stop()
    result = TrainResult(
        manifest, verdict, report, metrics, promoted, time.perf_counter() - started
    )
    if promote and not verdict.passed:
        raise GateFailed(
            f"{manifest.label} stays a candidate: {verdict.summary()}", verdict.reasons
        )
    return result


def _production_metrics(
    store: ModelStore, cfg: Config, names: list[str], X_test: Any, y_test: Any
) -> tuple[dict[str, float] | None, str, int | None]:
    """Production's metrics on the candidate's held-out rows (None if there is none)."""
    alias = cfg.model_store.alias
    if store.alias_state(alias) is None:
        return None, "", None
    try:
        loaded = store.load(alias)
    except StreamscoreError as exc:
        return None, f"it cannot be loaded ({exc})", None
    version = loaded.manifest.version
    if loaded.manifest.feature_names != names:
        return None, f"v{version} has a different feature schema", version
    try:
        return evaluate(loaded.model, X_test, y_test, task=cfg.training.task), "", version
    except Exception as exc:  # noqa: BLE001
        return None, f"v{version} failed on the held-out rows ({exc})", version


def _announce(cfg: Config, model: str, version: int) -> None:
    """Tell running workers now (best effort; they also poll the store)."""
    from streamscore.control import announce_alias_move

    announce_alias_move(
        cfg.kafka, model=model, alias=cfg.model_store.alias, version=version, timeout_s=2.0
    )
