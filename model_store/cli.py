"""``streamscore models``: list, show, promote, rollback, history, verify."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table

from model_store.store import ModelStore
from streamscore import jsonio
from streamscore.clitools import EXIT_ERROR, StreamscoreGroup, config_option, console, pass_state

KEY_METRICS = ("accuracy", "roc_auc", "rmse", "r2")


def _store(state: Any) -> ModelStore:
    return ModelStore.from_config(state.config)


def _print_json(data: Any) -> None:
    sys.stdout.write(jsonio.dumps_pretty(data).decode() + "\n")


@click.group("models", cls=StreamscoreGroup)
@config_option
def models() -> None:
    """The versioned model store."""


@models.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_state
def list_versions(state: Any, as_json: bool) -> None:
    """Versions with their metrics and aliases."""
    store = _store(state)
    manifests = store.versions()
    aliases = store.aliases()
    if as_json:
        _print_json(
            [
                {**m.to_dict(), "aliases": sorted(a for a, v in aliases.items() if v == m.version)}
                for m in manifests
            ]
        )
        return
    shown = [k for k in KEY_METRICS if any(k in m.metrics for m in manifests)]
    table = Table(title=f"{store.name} in {store.root}")
    table.add_column("version", justify="right")
    table.add_column("created (UTC)")
    table.add_column("task")
    table.add_column("estimator")
    for metric in shown:
        table.add_column(metric, justify="right")
    table.add_column("aliases")
    for m in manifests:
        tags = ", ".join(sorted(a for a, v in aliases.items() if v == m.version))
        estimator = m.estimator.split("(")[0].rsplit(".", 1)[-1]
        cells = [f"{m.metrics[k]:.4f}" if k in m.metrics else "" for k in shown]
        table.add_row(
            str(m.version), m.created_at[:16].replace("T", " "), m.task, estimator, *cells, tags
        )
    if not manifests:
        console.print(f"no versions of {store.name} in {store.root}: run `streamscore train`")
        return
    console.print(table)


@models.command()
@config_option
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def show(state: Any, ref: str, as_json: bool) -> None:
    """One version's manifest (REF = version number or alias)."""
    manifest = _store(state).manifest(ref)
    data = manifest.to_dict()
    if as_json:
        _print_json(data)
        return
    data.pop("config", None)
    features = data.pop("features")
    for key, value in data.items():
        console.print(f"[bold]{key}[/]: {value}")
    console.print(
        f"[bold]features[/] ({len(features)}): "
        + ", ".join(f"{f['name']}:{f['dtype']}" for f in features)
    )


@models.command()
@config_option
@click.argument("ref")
@click.option("--alias", default=None, help="default: [model_store] alias")
@click.option("--reason", default="", help="recorded in the history")
@pass_state
def promote(state: Any, ref: str, alias: str | None, reason: str) -> None:
    """Point an alias at a version; running workers swap within a second."""
    cfg = state.config
    alias = alias or cfg.model_store.alias
    event = _store(state).promote(ref, alias, reason=reason)
    _announce(cfg, alias, event.to_version)
    console.print(f"{alias}: v{event.from_version} -> v{event.to_version}")


@models.command()
@config_option
@click.option("--alias", default=None, help="default: [model_store] alias")
@click.option("--reason", default="", help="recorded in the history")
@pass_state
def rollback(state: Any, alias: str | None, reason: str) -> None:
    """Return an alias to the version it pointed at before."""
    cfg = state.config
    alias = alias or cfg.model_store.alias
    event = _store(state).rollback(alias, reason=reason)
    _announce(cfg, alias, event.to_version)
    console.print(f"{alias}: v{event.from_version} -> v{event.to_version} (rolled back)")


@models.command()
@config_option
@click.option("--alias", default=None, help="only this alias")
@pass_state
def history(state: Any, alias: str | None) -> None:
    """Every alias move, oldest first."""
    events = _store(state).history(alias)
    table = Table(title="alias history")
    for column in ("seq", "at (UTC)", "alias", "action", "from", "to", "reason"):
        table.add_column(column)
    for e in events:
        table.add_row(
            str(e.seq),
            e.at[:19].replace("T", " "),
            e.alias,
            e.action,
            f"v{e.from_version}" if e.from_version else "-",
            f"v{e.to_version}",
            e.reason,
        )
    console.print(table)


@models.command()
@config_option
@pass_state
def verify(state: Any) -> None:
    """Re-check every version's checksum and library versions."""
    results = _store(state).verify()
    table = Table(title="verification")
    table.add_column("version", justify="right")
    table.add_column("result")
    table.add_column("problem", overflow="fold")
    for r in results:
        table.add_row(str(r.version), "[green]ok[/]" if r.ok else "[red]FAILED[/]", r.problem)
    console.print(table)
    if any(not r.ok for r in results):
        sys.exit(EXIT_ERROR)


def _announce(cfg: Any, alias: str, version: int) -> None:
    from streamscore.control import announce_alias_move

    announce_alias_move(cfg.kafka, model=cfg.model_store.model_name, alias=alias, version=version)
