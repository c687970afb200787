"""Bring a model fitted elsewhere into the store: schema, evaluation, gate, register, promote.

``streamscore models import PATH`` and :func:`training.register_fitted` both end here. The
model is evaluated with the same metrics and judged by the same ``[training.gate]`` as a
model ``streamscore train`` fits, on the rows given (all of them, or a held-out share), in
the form a worker will give it (a DataFrame for a model fitted on one). The schema comes from:

1. the data (``--data``), checked against the model's ``feature_names_in_``;
2. else a schema file (``--schema``) or the MLflow signature, checked the same way;
3. else nothing can be served, and the error says what to pass.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from model_store import DataFingerprint, FeatureSpec, ImportRecord, Manifest, ModelStore
from model_store.examples import EXAMPLES_FILE, Example
from model_store.manifest import TEXT_DTYPES
from model_store.release import promote_and_announce
from streamscore import jsonio
from streamscore.config import TASK_METRICS, Config, gate_for
from streamscore.exceptions import GateFailed, TrainingError
from training.data import fingerprint, load_frame
from training.evaluate import evaluate, split
from training.examples import load_examples, run_examples
from training.frames import (
    encoder_categories,
    fitted_columns,
    model_input,
    schema_frame,
    schema_from_frame,
)
from training.gate import GateVerdict, ProductionScore, judge, score_production
from training.reference import reference_profile
from training.sources import ModelSource, read_source

log = logging.getLogger(__name__)

SCHEMA_FILE_HELP = (
    'a JSON list of features: [{"name": "age", "dtype": "float"}, {"name": "region", '
    '"dtype": "category", "categories": ["north", "south"]}, ...] (dtype: float, int, bool, '
    'category or string; "required": false for an optional one)'
)


@dataclass(frozen=True)
class ImportResult:
    """What an import registered and decided. ``verdict`` is None with ``gate=False``."""

    manifest: Manifest
    metrics: dict[str, float]
    verdict: GateVerdict | None
    promoted: bool
    evaluated_rows: int


class ImportRefused(GateFailed):
    """The gate refused promotion; the model is registered as a candidate (``result``)."""

    def __init__(self, message: str, result: ImportResult) -> None:
        super().__init__(message, result.verdict.reasons if result.verdict else [])
        self.result = result


@dataclass(frozen=True)
class LabelledRows:
    """Evaluation rows: features (as a DataFrame) and labels, and where they came from."""

    frame: pd.DataFrame
    y: np.ndarray[Any, Any]
    data: DataFingerprint | None = None


def import_model(
    cfg: Config,
    path: Path,
    *,
    data: Path | None = None,
    label: str | None = None,
    schema_file: Path | None = None,
    test_size: float | None = None,
    gate: bool = True,
    promote: bool = False,
    examples: Path | None = None,
) -> ImportResult:
    """``streamscore models import``: read ``path`` (joblib/pickle file or MLflow folder),
    derive and check its schema, evaluate and gate it (``examples`` included), register it
    (with its examples), promote it if asked."""
    _check_flags(gate=gate, promote=promote)
    checks = load_examples(examples, what="--examples")
    source = read_source(path)
    schema_override = read_schema_file(schema_file) if schema_file is not None else None
    rows: LabelledRows | None = None
    if data is not None:
        frame = load_frame(data)
        label = label or cfg.training.label_column
        rows = _rows_from_frame(frame, label, data)
    return register_model(
        cfg,
        source,
        rows=rows,
        schema=schema_override,
        test_size=test_size,
        gate=gate,
        promote=promote,
        examples=checks,
    )


def register_model(
    cfg: Config,
    source: ModelSource,
    *,
    rows: LabelledRows | None,
    schema: Sequence[FeatureSpec] | None = None,
    test_size: float | None = None,
    gate: bool = True,
    promote: bool = False,
    examples: tuple[bytes, list[Example]] | None = None,
) -> ImportResult:
    """The shared path of the CLI and the notebook API, once the model is in memory.

    ``examples`` (the file's bytes and its examples) are judged with the gate and stored with
    the version, so every worker runs them at load too."""
    _check_flags(gate=gate, promote=promote)
    model = source.model
    where = str(source.path)
    task = model_task(model, cfg.training.task, where=where)
    if gate:
        check_gate_task(cfg, task)
    not_features = (cfg.training.id_column, *cfg.training.drop_columns)
    features = resolve_schema(
        model, where=where, rows=rows, schema=schema or source.schema, exclude=not_features
    )
    metrics: dict[str, float] = {}
    evaluated = 0
    X_test: Any = None
    y_test: Any = None
    given: Any = None
    if rows is not None:
        X_test, y_test = _evaluation_rows(rows, features, task, test_size, cfg.training.seed)
        evaluated = len(y_test)
        given = model_input(model, X_test, features)
        try:
            metrics = evaluate(model, given, y_test, task=task)
        except Exception as exc:  # the model's own code failed on the rows
            raise TrainingError(
                f"{where}: the model failed on the {evaluated} evaluation rows "
                f"({type(exc).__name__}: {exc}); check that --data holds the columns it was "
                f"fitted on, with the same types"
            ) from exc
    store = ModelStore.from_config(cfg)
    alias = cfg.model_store.alias
    verdict: GateVerdict | None = None
    if gate:
        production = _production(store, alias, task, features, X_test, y_test)
        report = None
        if examples is not None:
            classes = _classes(model, where) if task == "classification" else None
            report = run_examples(
                cfg, model, examples[1], task=task, features=features, classes=classes
            )
        judged_by = gate_for(cfg.training.gate, task)
        verdict = judge(judged_by, metrics, production=production, examples=report)
        if rows is None and verdict.checks:
            verdict = replace(
                verdict,
                reasons=[*verdict.reasons, "no --data to evaluate the model on"],
                passed=False,
            )
    files = {EXAMPLES_FILE: examples[0]} if examples is not None else {}
    if rows is not None:  # the data scientist's rows stand for the training data
        files |= reference_profile(model, features, rows.frame, given, task=task)
    manifest = store.register(
        model,
        task=task,
        features=features,
        classes=_classes(model, where) if task == "classification" else None,
        metrics=metrics,
        estimator=describe_model(model),
        data=rows.data if rows is not None else None,
        config=cfg.to_dict(),
        parent=store.aliases().get(alias),
        aliases=("candidate",),
        imported=ImportRecord(str(source.path), source.sha256, source.format),
        gate=verdict.to_dict() if verdict is not None else None,
        files=files,
    )
    promoted = False
    if promote and verdict is not None and verdict.passed:
        reason = f"imported; gate {verdict.summary()}"
        promote_and_announce(store, cfg.kafka, manifest.version, alias, reason=reason)
        promoted = True
    result = ImportResult(manifest, metrics, verdict, promoted, evaluated)
    if promote and not promoted and verdict is not None:
        current = store.aliases().get(alias)
        keeps = f"{alias} stays v{current}" if current is not None else f"no {alias} model yet"
        raise ImportRefused(
            f"{manifest.label} stays a candidate ({keeps}): {verdict.summary()}", result
        )
    return result


# --------------------------------------------------------------------------- checks


def _check_flags(*, gate: bool, promote: bool) -> None:
    if promote and not gate:
        raise TrainingError(
            "--no-gate registers without judging the model, so it cannot also --promote; "
            "drop --no-gate to promote when the gate passes, or promote later with "
            "`streamscore models promote VERSION`"
        )


def model_task(model: Any, configured: str, *, where: str) -> str:
    """classification or regression, from the fitted model (the config when it cannot tell)."""
    for method in ("predict", "fit"):
        if not callable(getattr(model, method, None)):
            raise TrainingError(
                f"{where} holds a {type(model).__name__}, not a scikit-learn estimator (no "
                f"{method}); save the fitted estimator or Pipeline itself with joblib.dump"
            )
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise TrainingError(
            f"{where} holds an unfitted {type(model).__name__}; fit it before saving it"
        ) from exc
    except TypeError:  # not a scikit-learn estimator class: trust predict
        pass
    if is_classifier(model):
        return "classification"
    if is_regressor(model):
        return "regression"
    return configured


def check_gate_task(cfg: Config, task: str) -> None:
    """The gate must judge metrics that exist for the model's task (before evaluating)."""
    g = gate_for(cfg.training.gate, task)
    named = [*g.min, *g.max, *([g.compare_metric] if g.compare_metric else [])]
    foreign = [m for m in named if m not in TASK_METRICS[task]]
    if foreign:
        kind = "classifier" if task == "classification" else "regressor"
        raise TrainingError(
            f"the model is a {kind} but [training.gate] in {cfg.source or 'the config'} "
            f"checks {', '.join(dict.fromkeys(foreign))}, which a {task} model does not have; "
            f"set [training] task = {task!r} and gate on {', '.join(TASK_METRICS[task])}, or "
            f"pass --no-gate to register it without judging"
        )


def resolve_schema(
    model: Any,
    *,
    where: str,
    rows: LabelledRows | None,
    schema: Sequence[FeatureSpec] | None,
    exclude: Sequence[str] = (),
) -> list[FeatureSpec]:
    """The feature schema in the model's column order (see the module doc). For a model
    fitted on an array, the data's columns except ``exclude`` (id and dropped columns)."""
    fitted = fitted_columns(model)
    known = encoder_categories(model)
    if schema is not None:
        specs = _check_against_model(list(schema), fitted, model, where)
        return [_with_known(spec, known) for spec in specs]
    if rows is not None:
        frame = rows.frame
        if fitted is not None:
            missing = [c for c in fitted if c not in frame.columns]
            if missing:
                raise TrainingError(
                    f"{where} was fitted on columns the data lacks: "
                    f"{', '.join(map(repr, missing[:10]))} (data columns: "
                    f"{', '.join(map(str, frame.columns[:20]))}); pass the data it was fitted on"
                )
            return schema_from_frame(frame, fitted, known=known)
        columns = [str(c) for c in frame.columns if str(c) not in exclude]
        expected = getattr(model, "n_features_in_", None)
        if expected is not None and expected != len(columns):
            raise TrainingError(
                f"{where} was fitted on a matrix of {expected} columns without names, but the "
                f"data has {len(columns)} feature columns besides the label and "
                f"[training] id_column / drop_columns; keep only its features in model order, "
                f"or pass --schema FILE ({SCHEMA_FILE_HELP})"
            )
        return schema_from_frame(frame, columns, known=known)
    names = f" (it was fitted on the columns {', '.join(fitted[:10])})" if fitted else ""
    raise TrainingError(
        f"{where}: cannot tell the model's feature schema{names}: pass --data FILE (CSV or "
        f"Parquet with the features and the label column, also used to evaluate and gate the "
        f"model; --label NAME) or --schema FILE ({SCHEMA_FILE_HELP})"
    )


def _check_against_model(
    specs: list[FeatureSpec], fitted: list[str] | None, model: Any, where: str
) -> list[FeatureSpec]:
    names = [s.name for s in specs]
    if fitted is not None:
        missing = [c for c in fitted if c not in names]
        extra = [n for n in names if n not in fitted]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"lacks {', '.join(map(repr, missing[:10]))}")
            if extra:
                parts.append(f"has {', '.join(map(repr, extra[:10]))} the model was not fitted on")
            raise TrainingError(
                f"the schema does not match the columns {where} was fitted on "
                f"(feature_names_in_): it {' and '.join(parts)}"
            )
        by_name = {s.name: s for s in specs}
        return [by_name[c] for c in fitted]
    expected = getattr(model, "n_features_in_", None)
    if expected is not None and expected != len(specs):
        raise TrainingError(
            f"the schema lists {len(specs)} features but {where} was fitted on {expected}"
        )
    return specs


def _with_known(spec: FeatureSpec, known: Mapping[str, Sequence[str]]) -> FeatureSpec:
    if spec.dtype in TEXT_DTYPES and not spec.categories and spec.name in known:
        return replace(spec, dtype="category", categories=tuple(known[spec.name]))
    return spec


def read_schema_file(path: Path) -> list[FeatureSpec]:
    """``--schema FILE``: a JSON list of features (or ``{"features": [...]}``)."""
    try:
        data = jsonio.loads(path.read_bytes())
    except FileNotFoundError:
        raise TrainingError(f"schema file {path} does not exist") from None
    except jsonio.JSONDecodeError as exc:
        raise TrainingError(f"schema file {path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict):
        data = data.get("features")
    if not isinstance(data, list) or not data:
        raise TrainingError(f"schema file {path}: expected {SCHEMA_FILE_HELP}")
    specs = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "name" not in entry or "dtype" not in entry:
            raise TrainingError(
                f"schema file {path}: entry {i} needs a name and a dtype; expected "
                f"{SCHEMA_FILE_HELP}"
            )
        specs.append(FeatureSpec.from_dict(entry))
    return specs


# --------------------------------------------------------------------------- rows


def _rows_from_frame(frame: pd.DataFrame, label: str, path: Path | None) -> LabelledRows:
    if label not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20]))
        raise TrainingError(
            f"label column {label!r} is not in {path or 'the data'} (columns: {shown}); pass "
            f"--label NAME"
        )
    labelled = frame.loc[frame[label].notna()].reset_index(drop=True)
    if labelled.empty:
        raise TrainingError(f"no row of {path or 'the data'} has a value in {label!r}")
    y = labelled[label].to_numpy()
    if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
        y_int = y.astype(np.int64)
        y = y_int if np.array_equal(y_int, y) else y
    features = labelled.drop(columns=[label])
    data = fingerprint(path, len(frame)) if path is not None else None
    return LabelledRows(features, y, data)


def labelled_rows(X: Any, y: Any) -> LabelledRows:
    """A notebook's sample (DataFrame or array, plus labels) as evaluation rows."""
    if isinstance(X, pd.DataFrame):
        frame = X.reset_index(drop=True)
    else:
        matrix = np.asarray(X)
        if matrix.ndim != 2:
            raise TrainingError(f"X must be a 2-D table of rows, got shape {matrix.shape}")
        frame = pd.DataFrame(matrix, columns=[f"x{i}" for i in range(matrix.shape[1])])
        frame = frame.infer_objects()
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(frame):
        raise TrainingError(
            f"y must hold one label per row of X ({len(frame)} rows), got shape {labels.shape}"
        )
    return LabelledRows(frame, labels)


def _evaluation_rows(
    rows: LabelledRows,
    schema: Sequence[FeatureSpec],
    task: str,
    test_size: float | None,
    seed: int,
) -> tuple[pd.DataFrame, Any]:
    frame = schema_frame(rows.frame, schema)
    if not test_size:
        return frame, rows.y
    index = np.arange(len(frame))
    _, test_index, _, y_test = split(index, rows.y, task=task, test_size=test_size, seed=seed)
    return frame.iloc[test_index].reset_index(drop=True), y_test


def _production(
    store: ModelStore,
    alias: str,
    task: str,
    schema: Sequence[FeatureSpec],
    X_test: Any,
    y_test: Any,
) -> ProductionScore | None:
    if X_test is not None:
        return score_production(
            store, alias, task=task, schema=schema, X_test=X_test, y_test=y_test
        )
    state = store.alias_state(alias)
    if state is None:
        return None
    return ProductionScore(state[0], None, "no --data to measure both models on")


def _classes(model: Any, where: str) -> list[Any]:
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise TrainingError(f"{where}: the classifier has no classes_; is it fitted?")
    return [c.item() if isinstance(c, np.generic) else c for c in classes]


def describe_model(model: Any) -> str:
    """The estimator as recorded in the manifest, e.g. ``Pipeline(ColumnTransformer, ...)``."""
    steps = getattr(model, "steps", None)
    if steps:
        inner = ", ".join(type(step).__name__ for _, step in steps)
        return f"imported {type(model).__module__}.{type(model).__name__}({inner})"
    return f"imported {type(model).__module__}.{type(model).__name__}"
