"""``streamscore train`` and ``streamscore demo-data`` (also ``python -m training``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from app.clitools import State, StreamscoreGroup, config_option, console, pass_state

if TYPE_CHECKING:  # the training stack (sklearn, pandas) loads only when a command runs
    from training.run import TrainResult


@click.command("train")
@config_option
@click.option(
    "--no-promote",
    is_flag=True,
    help="register as a candidate only; the gate is reported, not applied",
)
@click.option(
    "--force",
    is_flag=True,
    help="train and register even when a version was made from the same data, settings and code",
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="training data, .csv or .parquet (default: [training] data_path)",
)
@pass_state
def train(state: State, no_promote: bool, force: bool, data_path: Path | None) -> None:
    """Load, cleanse, fit, evaluate, gate and register; promote when the gate passes.

    Exit code 3 when the gate refuses (the model stays a candidate), 2 for unusable data or
    configuration. Retraining on unchanged data, settings and code registers nothing and says
    "unchanged since vN" (exit 0), unless --force.
    """
    from training.run import GateRefused, Unchanged
    from training.run import train as run_train

    cfg = state.config
    data = data_path.resolve() if data_path is not None else None
    try:
        result = run_train(
            cfg, promote=not no_promote, force=force, data_path=data, console=console
        )
    except Unchanged as unchanged:
        console.print(str(unchanged), markup=False, highlight=False)
        return
    except GateRefused as refused:
        show_result(refused.result, alias=cfg.model_store.alias)
        raise
    show_result(result, alias=cfg.model_store.alias)
    if result.promoted:
        from streamscore.control import require_acknowledged

        console.print(
            f"[bold green]promoted[/] {result.manifest.label} to {cfg.model_store.alias!r} "
            f"in {result.seconds:.1f}s"
        )
        what = f"promoted {result.manifest.label}"
        if not require_acknowledged(cfg.kafka, bool(result.announced), what, 2.0):
            console.print(
                f"[dim]no notice on {cfg.kafka.control_topic} (Kafka not reachable): workers "
                f"pick the move up on their next store poll[/]",
                highlight=False,
            )
    else:
        console.print(
            f"registered {result.manifest.label} as a candidate (not promoted: --no-promote)"
        )


def show_result(result: TrainResult, *, alias: str) -> None:
    """The cleanse report, held-out metrics (beside production's) and every gate check."""
    for line in result.cleanse_report.lines():
        console.print(f"  {line}", highlight=False)
    console.print(
        f"\n[bold]{result.manifest.label}[/]: metrics on {result.test_rows} held-out rows "
        f"({result.train_rows} used for fitting)"
    )
    metrics = Table(box=box.SIMPLE_HEAD)
    metrics.add_column("metric")
    metrics.add_column("candidate", justify="right")
    production = result.production
    old = production.metrics if production is not None else None
    if production is not None and old is not None:
        metrics.add_column(f"{production.label}, same rows", justify="right")
    for name, value in result.metrics.items():
        row = [name, f"{value:.4f}"]
        if old is not None:
            row.append("-" if old.get(name) is None else f"{old[name]:.4f}")
        metrics.add_row(*row)
    console.print(metrics)
    verdict = result.verdict
    outcome = "[green]passed[/]" if verdict.passed else "[red]failed[/]"
    console.print(f"[bold]quality gate[/] {outcome} (promotion to {alias!r} needs a pass)")
    if not verdict.checks:
        console.print("  no checks configured in [training.gate]", markup=False)
        return
    checks = Table(box=box.SIMPLE_HEAD)
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("detail")
    for check in verdict.checks:
        mark = "[green]ok[/]" if check.passed else "[red]FAIL[/]"
        checks.add_row(escape(check.name), mark, escape(check.detail))
    console.print(checks)


@click.command("demo-data")
@config_option
@pass_state
def demo_data(state: State) -> None:
    """Export scikit-learn's breast-cancer set: a training CSV and held-back labelled events."""
    from training.demo_data import export_demo_data

    data = export_demo_data(state.config)
    console.print(f"training data: {data.train_path} ({data.train_rows} rows)")
    console.print(f"held-back events: {data.events_path} ({data.event_rows} events)")


@click.group("training", cls=StreamscoreGroup)
@config_option
def group() -> None:
    """Training commands (``python -m training``)."""


group.add_command(train)
group.add_command(demo_data)
