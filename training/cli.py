"""``streamscore train`` and ``streamscore demo-data``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from streamscore.clitools import StreamscoreGroup, config_option, console, pass_state


@click.command("train")
@config_option
@click.option("--no-promote", is_flag=True, help="register as a candidate only; skip the gate")
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="training data (default: [training] data_path)",
)
@pass_state
def train(state: Any, no_promote: bool, data_path: Path | None) -> None:
    """Load, cleanse, fit, evaluate, register; promote if the quality gate passes."""
    from streamscore.exceptions import GateFailed
    from training.run import train as run_train

    cfg = state.config
    try:
        result = run_train(cfg, promote=not no_promote, data_path=data_path, console=console)
    except GateFailed:
        _print_latest(cfg)
        raise
    for line in result.report.lines():
        console.print(f"  {line}")
    table = Table(title=f"{result.manifest.label}: held-out metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted(result.metrics.items()):
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    for check in result.verdict.checks:
        mark = "[green]ok[/]" if check.passed else "[red]FAIL[/]"
        console.print(f"  gate {mark} {check.name}: {escape(check.detail)}")
    if result.promoted:
        console.print(
            f"[bold green]promoted[/] {result.manifest.label} to {cfg.model_store.alias!r} "
            f"in {result.seconds:.1f}s"
        )
    else:
        console.print(f"registered {result.manifest.label} as a candidate (not promoted)")


def _print_latest(cfg: Any) -> None:
    from model_store import ModelStore

    versions = ModelStore.from_config(cfg).versions()
    if versions:
        latest = versions[-1]
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(latest.metrics.items()))
        console.print(f"{latest.label} (candidate): {metrics}")


@click.command("demo-data")
@config_option
@pass_state
def demo_data(state: Any) -> None:
    """Export scikit-learn's breast-cancer set: a training CSV and held-back events."""
    from training.demo_data import export_demo_data

    data = export_demo_data(state.config)
    console.print(f"training data: {data.train_path} ({data.train_rows} rows)")
    console.print(f"held-back events: {data.events_path} ({data.event_rows} events)")


@click.group("training", cls=StreamscoreGroup)
@config_option
def group() -> None:
    """Training (python -m training)."""


group.add_command(train)
group.add_command(demo_data)
