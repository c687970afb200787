"""The training flow: load → cleanse → split → fit → evaluate → gate → register → promote.

Each step is a function of its own module; :func:`train` strings them together under the
training lock, records everything in the manifest and shows one progress line per step.

The candidate is always registered (alias ``candidate``, parent = the current production
version). It is promoted to the alias workers follow (``[model_store] alias``, normally
``production``) only when the gate passes; otherwise :class:`GateRefused` (a
:class:`~streamscore.exceptions.GateFailed`) is raised after registration, with the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from sklearn.pipeline import Pipeline

from model_store import DataFingerprint, FeatureSpec, Manifest, ModelStore, current_git_commit
from model_store.examples import EXAMPLES_FILE, Example
from model_store.release import promote_and_announce
from model_store.store import library_versions
from streamscore.config import Config, TrainingConfig
from streamscore.exceptions import GateFailed, StreamscoreError, TrainingError
from training.cleanse import CleanseReport, cleanse
from training.custom import build_custom, describe_custom, load_factory
from training.data import fingerprint, load_frame
from training.evaluate import evaluate, split
from training.examples import ExamplesReport, load_examples, run_examples
from training.features import derive_schema, feature_matrix
from training.frames import training_frame
from training.gate import GateVerdict, ProductionScore, judge, score_production
from training.lock import hold_training_lock
from training.pipeline import build_pipeline, check_estimator_config, describe
from training.progress import StepProgress
from training.reference import reference_profile
from training.unchanged import Recipe, identical_version

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

STEPS = ("load", "cleanse", "split", "fit", "evaluate", "gate", "register", "promote")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced and decided."""

    manifest: Manifest
    verdict: GateVerdict
    cleanse_report: CleanseReport
    metrics: dict[str, float]
    promoted: bool
    production: ProductionScore | None  # production on the same held-out rows, if compared
    data: DataFingerprint
    train_rows: int
    test_rows: int
    seconds: float
    #: After a promotion: whether the broker acknowledged the notice on the control topic
    #: (None when nothing was promoted).
    announced: bool | None = None


class Unchanged(StreamscoreError):
    """Nothing to train: ``manifest`` was made from the same data, settings and code."""

    def __init__(self, manifest: Manifest, data: DataFingerprint) -> None:
        super().__init__(
            f"unchanged since v{manifest.version}: same data (sha256 {data.sha256[:12]}), "
            f"[training] settings and code as {manifest.label}; nothing registered "
            f"(--force trains and registers anyway)"
        )
        self.manifest = manifest
        self.data = data


class GateRefused(GateFailed):
    """The gate refused promotion; the candidate is registered and described by ``result``."""

    def __init__(self, message: str, result: TrainResult) -> None:
        super().__init__(message, result.verdict.reasons)
        self.result = result


def train(
    cfg: Config,
    *,
    promote: bool = True,
    force: bool = False,
    progress: bool = True,
    data_path: Path | None = None,
    on_step: Callable[[str], None] | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Run the whole flow for ``cfg``'s model.

    ``promote=False`` registers the candidate and reports the gate's verdict without acting on
    it. ``force=False`` refuses to repeat a version (:class:`Unchanged`: same data, settings
    and code as an existing version, nothing registered). ``data_path`` overrides
    ``[training] data_path``. ``on_step`` hears each step's name as it starts.

    Raises :class:`TrainingError` for unusable data or configuration (nothing is registered),
    or when another run holds the training lock; :class:`GateRefused` when the gate refuses.
    """
    t = cfg.training
    path = Path(data_path) if data_path is not None else t.data_path
    config_dir = cfg.source.parent if cfg.source is not None else None
    if t.pipeline:  # refuse what cannot work before any data is read or fitted
        load_factory(t.pipeline, config_dir)
    else:
        check_estimator_config(t)
    store = ModelStore.from_config(cfg)
    alias = cfg.model_store.alias
    examples = _read_examples(t)
    started = time.perf_counter()
    with (
        hold_training_lock(cfg),
        StepProgress(STEPS, enabled=progress, console=console, on_step=on_step) as steps,
    ):
        with steps.step("load") as step:
            raw = load_frame(path)
            data = fingerprint(path, len(raw))
            step.note = f"{len(raw)} rows, {raw.shape[1]} columns from {path.name}"
        if not force:
            _refuse_repeat(store, cfg, path, data)
        with steps.step("cleanse") as step:
            report, schema, X, y = _cleanse(raw, t)
            step.note = (
                f"{report.rows_out} rows kept ({report.unlabeled_dropped} unlabeled, "
                f"{report.duplicates_dropped} duplicates dropped), {len(schema)} features"
            )
        with steps.step("split") as step:
            X_train, X_test, y_train, y_test = split(
                X, y, task=t.task, test_size=t.test_size, seed=t.seed
            )
            step.note = f"{len(y_train)} training rows, {len(y_test)} held out"
        with steps.step("fit") as step:
            if t.pipeline:
                pipeline = build_custom(t, schema, config_dir)
                estimator = describe_custom(t, pipeline)
                step.note = estimator
            else:
                pipeline = build_pipeline(t, schema)
                estimator = describe(t)
                step.note = t.estimator.rpartition(".")[2]
            _fit(pipeline, X_train, y_train, t, schema, estimator)
        with steps.step("evaluate") as step:
            metrics = evaluate(pipeline, X_test, y_test, task=t.task)
            step.note = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        with steps.step("gate") as step:
            production = None
            if t.gate.compare_metric:
                production = score_production(
                    store, alias, task=t.task, schema=schema, X_test=X_test, y_test=y_test
                )
            checked = _run_examples(cfg, pipeline, schema, examples)
            verdict = judge(t.gate, metrics, production=production, examples=checked)
            if verdict.passed:
                step.note = f"passed ({len(verdict.checks)} checks)"
            else:
                step.refuse("failed: " + "; ".join(verdict.reasons))
        with steps.step("register") as step:
            data = fingerprint(path, len(raw))
            files = {EXAMPLES_FILE: examples[0]} if examples is not None else {}
            files |= reference_profile(pipeline, schema, X_train, X_test, task=t.task)
            manifest = _register(
                store, cfg, pipeline, schema, metrics, data, path, estimator, verdict, files
            )
            step.note = f"{manifest.label} (candidate)"
        with steps.step("promote") as step:
            promoted = False
            announced: bool | None = None
            if not promote:
                step.skip("--no-promote: stays a candidate")
            elif not verdict.passed:
                step.skip("gate failed: stays a candidate")
            else:
                step.note, announced = _promote(store, cfg, manifest, verdict)
                promoted = True
    result = TrainResult(
        manifest=manifest,
        verdict=verdict,
        cleanse_report=report,
        metrics=metrics,
        promoted=promoted,
        production=production,
        data=data,
        train_rows=len(y_train),
        test_rows=len(y_test),
        seconds=time.perf_counter() - started,
        announced=announced,
    )
    if promote and not verdict.passed:
        raise _refused(store, alias, result)
    return result


def _refuse_repeat(store: ModelStore, cfg: Config, path: Path, data: DataFingerprint) -> None:
    """Raise :class:`Unchanged` when a version was made from this data, settings and code."""
    recipe = Recipe.of(data, _recorded_config(cfg, path), _git_commit(), library_versions())
    same = identical_version(store.versions(), recipe)
    if same is not None:
        raise Unchanged(same, data)


def _git_commit() -> str | None:
    return current_git_commit(Path(__file__).resolve().parent)


def _promote(
    store: ModelStore, cfg: Config, manifest: Manifest, verdict: GateVerdict
) -> tuple[str, bool]:
    """Move the followed alias to the new version and tell the workers; the step's note and
    whether the broker acknowledged the notice."""
    alias = cfg.model_store.alias
    move = promote_and_announce(
        store,
        cfg.kafka,
        manifest.version,
        alias,
        reason=f"gate passed: {verdict.summary()}",
        timeout_s=2.0,
    )
    return f"{alias} -> v{manifest.version}", move.announced


def _refused(store: ModelStore, alias: str, result: TrainResult) -> GateRefused:
    current = store.aliases().get(alias)
    keeps = f"{alias} stays v{current}" if current is not None else f"no {alias} model yet"
    return GateRefused(
        f"{result.manifest.label} stays a candidate ({keeps}): {result.verdict.summary()}", result
    )


def _cleanse(
    raw: pd.DataFrame, t: TrainingConfig
) -> tuple[CleanseReport, list[FeatureSpec], Any, Any]:
    """The cleansed rows as the model's input (a feature matrix, or a DataFrame for a
    ``[training] pipeline`` factory) and labels, with the report and the schema."""
    frame, report = cleanse(
        raw,
        label=t.label_column,
        id_column=t.id_column,
        task=t.task,
        keep_text=[*t.categorical_columns, *t.drop_columns],
    )
    schema = derive_schema(
        frame,
        label=t.label_column,
        id_column=t.id_column,
        drop=t.drop_columns,
        categorical=t.categorical_columns,
        free_text=bool(t.pipeline),
    )
    y = frame[t.label_column].to_numpy()
    if t.pipeline:  # the data scientist's pipeline selects columns by name: a DataFrame
        X = training_frame(frame, schema)
        return report, [replace(f, frame_dtype=str(X[f.name].dtype)) for f in schema], X, y
    return report, schema, feature_matrix(frame, schema), y


def _register(
    store: ModelStore,
    cfg: Config,
    pipeline: Pipeline,
    schema: list[FeatureSpec],
    metrics: dict[str, float],
    data: DataFingerprint,
    path: Path,
    estimator: str,
    verdict: GateVerdict,
    files: dict[str, bytes] | None,
) -> Manifest:
    """Store the fitted pipeline as a new candidate version, with its lineage, verdict and
    files."""
    t = cfg.training
    return store.register(
        pipeline,
        task=t.task,
        features=schema,
        classes=_classes(pipeline) if t.task == "classification" else None,
        metrics=metrics,
        estimator=estimator,
        data=data,
        config=_recorded_config(cfg, path),
        git_commit=_git_commit(),
        parent=store.aliases().get(cfg.model_store.alias),
        aliases=("candidate",),
        gate=verdict.to_dict(),
        files=files,
    )


def _fit(
    pipeline: Pipeline,
    X: Any,
    y: npt.NDArray[Any],
    t: TrainingConfig,
    schema: list[FeatureSpec],
    estimator: str,
) -> None:
    if t.imputer == "none" and not t.pipeline:
        numeric = [j for j, f in enumerate(schema) if f.dtype != "category"]
        holes = [
            schema[j].name for j in numeric if np.isnan(np.asarray(X[:, j], dtype=np.float64)).any()
        ]
        if holes:
            raise TrainingError(
                f"[training] imputer = 'none' but feature{'s' if len(holes) > 1 else ''} "
                f"{', '.join(map(repr, holes[:5]))} have missing values; set imputer to "
                f"'median', 'mean' or 'most_frequent', or fill the data"
            )
    try:
        pipeline.fit(X, y)
    except Exception as exc:  # any estimator error is a training failure, with its cause
        raise TrainingError(
            f"fitting {estimator} on {len(y)} rows failed: {type(exc).__name__}: {exc}"
        ) from exc


def _read_examples(t: TrainingConfig) -> tuple[bytes, list[Example]] | None:
    """``[training] examples``, checked before anything is trained (None when unset)."""
    return load_examples(t.examples, what="[training] examples")


def _run_examples(
    cfg: Config,
    pipeline: Pipeline,
    schema: list[FeatureSpec],
    examples: tuple[bytes, list[Example]] | None,
) -> ExamplesReport | None:
    """The candidate on the examples, validated the way the workers will validate them."""
    if examples is None:
        return None
    t = cfg.training
    return run_examples(
        cfg,
        pipeline,
        examples[1],
        task=t.task,
        features=schema,
        classes=_classes(pipeline) if t.task == "classification" else None,
    )


def _classes(pipeline: Pipeline) -> list[Any]:
    """The fitted class labels as JSON-able Python values (no numpy scalars)."""
    return [c.item() if isinstance(c, np.generic) else c for c in pipeline.classes_]


def _recorded_config(cfg: Config, path: Path) -> dict[str, Any]:
    """``cfg.to_dict()`` with the data path actually used (``--data`` overrides it)."""
    recorded = cfg.to_dict()
    recorded["training"]["data_path"] = str(path)
    return recorded
