"""Run a version's examples through the scoring path the stream uses, and judge each answer.

The events go through :func:`worker.processor.score_events` (validation with the worker's
policy, one model call), so "dead-lettered with stage schema" means exactly what a worker
would do with the event. Used by the training gate (on the fitted candidate, before it is
registered), ``streamscore models test`` and every worker before it swaps a version in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model_store import FeatureSpec, LoadedModel, Manifest, ModelStore
from model_store.examples import (
    EXAMPLES_FILE,
    Answer,
    Example,
    ExampleResult,
    ExamplesReport,
    parse_examples,
)
from streamscore.exceptions import ExamplesFailed
from worker.processor import ServingModel, score_events
from worker.validation import ValidationPolicy

__all__ = ["ExampleResult", "ExamplesReport", "check_examples", "run_examples", "run_on_model"]

#: Examples carry no id; the field name only matters for copying one into the output.
_ID_FIELD = "id"


def check_examples(model: ServingModel, examples: Sequence[Example]) -> ExamplesReport:
    """:func:`run_examples`, raising :class:`ExamplesFailed` (listing each failed example
    with expected and actual) unless all pass."""
    report = run_examples(model, examples)
    if not report.passed:
        raise ExamplesFailed(report.summary())
    return report


def run_examples(model: ServingModel, examples: Sequence[Example]) -> ExamplesReport:
    """Score every example's event once, in one batch, and judge each answer."""
    outcomes = score_events([dict(e.event) for e in examples], model, _ID_FIELD)
    results = []
    for example, outcome in zip(examples, outcomes, strict=True):
        if outcome.body is None:
            answer = Answer(stage=outcome.stage, reason=outcome.message)
        else:
            answer = Answer(outcome.body["prediction"], outcome.body.get("probabilities"))
        results.append(ExampleResult(example, example.expect.judge(answer), answer.describe()))
    return ExamplesReport(model.label, results)


def run_on_model(
    model: Any,
    examples: Sequence[Example],
    *,
    task: str,
    features: Sequence[FeatureSpec],
    classes: Sequence[Any] | None,
    policy: ValidationPolicy,
    allowed_extra: Sequence[str] = (),
    label: str = "the candidate",
) -> ExamplesReport:
    """Examples on a fitted model not yet in the store (the gate, ``models import``);
    ``policy`` and ``allowed_extra`` as the workers have them (``[worker]``)."""
    draft = Manifest(
        name=label,
        version=0,
        created_at="",
        task=task,
        estimator=type(model).__name__,
        libraries={},
        artifact="",
        sha256="",
        features=tuple(features),
        classes=tuple(classes) if classes is not None else None,
        metrics={},
    )
    serving = ServingModel(
        LoadedModel(draft, model), policy, alias="", seq=0, allowed_extra=allowed_extra
    )
    return _relabel(run_examples(serving, examples), label)


def stored_examples(store: ModelStore, manifest: Manifest) -> list[Example] | None:
    """The examples stored with a version (checked against its manifest), None if none."""
    if EXAMPLES_FILE not in manifest.files:
        return None
    data = store.read_file(manifest, EXAMPLES_FILE)
    return parse_examples(data, where=f"{manifest.label} {EXAMPLES_FILE}")


def _relabel(report: ExamplesReport, label: str) -> ExamplesReport:
    return ExamplesReport(label, report.results)
