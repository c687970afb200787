"""``streamscore models import PATH``: a model fitted elsewhere into the store, gated.

A subcommand of ``streamscore models`` (:mod:`app.models_cli`), kept in a module of its own:
evaluating and gating a model is training code, and ``python -m model_store`` (the store's own
entry point, which loads :mod:`app.models_cli`) must never reach it. ``streamscore`` loads the
group from here, with this command added.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from app.clitools import State, config_option, console, pass_state
from app.examples_cli import models  # the models group, with `test` added

if TYPE_CHECKING:  # the training stack (sklearn, pandas) loads only when the command runs
    from training.importer import ImportResult


@models.command("import")
@config_option
@click.argument("path", type=click.Path(path_type=Path, exists=False))
@click.option(
    "--data",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="labelled rows (.csv or .parquet): the schema comes from them, the model is "
    "evaluated and gated on them",
)
@click.option(
    "--label", default=None, help="label column in --data (default: [training] label_column)"
)
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="JSON feature schema [{name, dtype, required, categories}, ...] when there is no "
    "--data (names checked against the model's feature_names_in_)",
)
@click.option(
    "--test-size",
    type=click.FloatRange(0.01, 0.99),
    default=None,
    help="evaluate on this held-out share of --data only (default: every row)",
)
@click.option(
    "--examples",
    "examples_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="JSON-lines examples with expectations (see the model store): judged with the gate, "
    "stored with the version, run by every worker at load",
)
@click.option("--no-gate", is_flag=True, help="register without judging (cannot --promote)")
@click.option(
    "--promote", is_flag=True, help="move [model_store] alias to the model when the gate passes"
)
@pass_state
def import_command(
    state: State,
    path: Path,
    data: Path | None,
    label: str | None,
    schema_file: Path | None,
    test_size: float | None,
    examples_file: Path | None,
    no_gate: bool,
    promote: bool,
) -> None:
    """Register a fitted model: a joblib/pickle file or an MLflow model folder.

    \b
    streamscore models import model.joblib --data test.csv --label churned --promote
    streamscore models import mlruns/1/<run>/artifacts/model --data test.csv --promote

    The model is evaluated with the training metrics and judged by [training.gate]; it is
    registered as a candidate, and with --promote moved to production when the gate passes
    (exit 3 when it does not). Models fitted on a DataFrame are served DataFrames.
    """
    from training.importer import ImportRefused, import_model

    cfg = state.config
    try:
        result = import_model(
            cfg,
            path.resolve(),
            data=data.resolve() if data is not None else None,
            label=label,
            schema_file=schema_file,
            test_size=test_size,
            gate=not no_gate,
            promote=promote,
            examples=examples_file.resolve() if examples_file is not None else None,
        )
    except ImportRefused as refused:
        show_import(refused.result, alias=cfg.model_store.alias)
        raise
    show_import(result, alias=cfg.model_store.alias)
    alias = cfg.model_store.alias
    if result.promoted:
        console.print(f"[bold green]promoted[/] {result.manifest.label} to {alias!r}")
    else:
        console.print(
            f"registered {result.manifest.label} as a candidate; promote it with "
            f"`streamscore models promote {result.manifest.version}`",
            highlight=False,
        )


def show_import(result: ImportResult, *, alias: str) -> None:
    """Schema, metrics and every gate check of an import."""
    m = result.manifest
    imported = m.imported
    origin = (
        f"{imported.format} {imported.path} (sha256 {imported.sha256[:16]}...)"
        if imported is not None
        else "?"
    )
    console.print(f"[bold]{escape(m.label)}[/] imported from {escape(origin)}", highlight=False)
    kinds = ", ".join(f"{f.name}: {f.dtype}" for f in m.features[:12])
    more = f" and {len(m.features) - 12} more" if len(m.features) > 12 else ""
    console.print(f"  {len(m.features)} features: {escape(kinds)}{more}", highlight=False)
    if not result.metrics:
        console.print("  not evaluated (no --data)", highlight=False)
    else:
        table = Table(box=box.SIMPLE_HEAD, title=f"metrics on {result.evaluated_rows} rows")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in result.metrics.items():
            table.add_row(name, f"{value:.4f}")
        console.print(table)
    verdict = result.verdict
    if verdict is None:
        console.print("quality gate not applied (--no-gate)")
        return
    outcome = "[green]passed[/]" if verdict.passed else "[red]failed[/]"
    console.print(f"[bold]quality gate[/] {outcome} (promotion to {alias!r} needs a pass)")
    checks = Table(box=box.SIMPLE_HEAD)
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("detail")
    for check in verdict.checks:
        mark = "[green]ok[/]" if check.passed else "[red]FAIL[/]"
        checks.add_row(escape(check.name), mark, escape(check.detail))
    for reason in verdict.reasons:
        if not any(reason == c.detail for c in verdict.checks):
            checks.add_row("data", "[red]FAIL[/]", escape(reason))
    if verdict.checks or verdict.reasons:
        console.print(checks)
