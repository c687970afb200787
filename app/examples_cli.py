"""``streamscore models test REF``: a version's examples, run as a worker runs them at load.

Kept out of :mod:`app.models_cli` because it needs the worker's scoring path, and
``python -m model_store`` (which loads that module) must import only the model store.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from app.clitools import EXIT_GATE_FAILED, State, config_option, console, pass_state
from app.models_cli import _print_table, _store, models
from model_store.examples import read_examples
from worker.examples import run_examples, stored_examples
from worker.processor import ServingModel
from worker.validation import ValidationPolicy


@click.command("test")
@config_option
@click.argument("ref", metavar="VERSION|ALIAS")
@click.option(
    "--examples",
    "examples_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="run this examples file instead of the one stored with the version",
)
@pass_state
def test_examples(state: State, ref: str, examples_path: Path | None) -> None:
    """Run a version's examples as a worker would at load (exit 3 if any fails).

    Each event goes through the worker's validation ([worker] policy) and the model; each
    answer is checked against its expectation.
    """
    cfg = state.config
    store = _store(state)
    loaded = store.load(ref)
    manifest = loaded.manifest
    if examples_path is not None:
        examples = read_examples(examples_path)[1]
    else:
        stored = stored_examples(store, manifest)
        if stored is None:
            console.print(
                escape(
                    f"{manifest.label} has no examples stored with it: configure "
                    f"[training] examples and retrain, or pass --examples FILE"
                ),
                highlight=False,
            )
            return
        examples = stored
    w = cfg.worker
    serving = ServingModel(
        loaded,
        ValidationPolicy.from_config(w),
        alias="",
        seq=0,
        allowed_extra=(w.id_field, *w.passthrough),
    )
    report = run_examples(serving, examples)
    table = Table(title=Text(f"examples on {manifest.label}"))
    for column in ("example", "result", "expected", "actual"):
        table.add_column(column, overflow="fold")
    for r in report.results:
        table.add_row(
            Text(r.example.label),
            "[green]ok[/]" if r.passed else "[red]FAILED[/]",
            Text(r.example.expect.describe()),
            Text(r.actual),
        )
    _print_table(table)
    console.print(escape(report.summary()), highlight=False)
    if not report.passed:
        sys.exit(EXIT_GATE_FAILED)


models.add_command(test_examples)

__all__ = ["models", "test_examples"]
