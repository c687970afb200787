"""``streamscore models`` (also ``python -m model_store``): list, show, promote, rollback,
history, verify. ``streamscore models test`` joins the group from :mod:`app.examples_cli` and
``streamscore models import`` from :mod:`app.models_import_cli`, so that ``python -m model_store``
never reaches worker or training code.

Exit codes as everywhere in streamscore: 0 ok, 2 a refused operation (the message says why and
what to do), 2 from ``verify`` when any version fails, 3 from ``test`` when an example fails.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from model_store.manifest import Manifest
from model_store.store import ModelStore

if TYPE_CHECKING:
    from model_store.release import AliasMove
from app.clitools import (
    EXIT_ERROR,
    State,
    StreamscoreGroup,
    config_option,
    console,
    pass_state,
)
from streamscore import jsonio
from streamscore.config import Config

#: Shown in ``list`` when any version has them, in this order.
KEY_METRICS = ("accuracy", "roc_auc", "f1", "rmse", "r2")


def _store(state: State) -> ModelStore:
    return ModelStore.from_config(state.config)


def _echo_json(data: Any) -> None:
    click.echo(jsonio.dumps_pretty(data).decode())


def _tags(aliases: dict[str, int], version: int) -> list[str]:
    return sorted(a for a, v in aliases.items() if v == version)


def _version(v: int | None) -> str:
    return "(unset)" if v is None else f"v{v}"


def _print_table(table: Table) -> None:
    """Fit a table to a terminal; piped or redirected, print it whole so no cell is cut."""
    if console.is_terminal:
        console.print(table)
        return
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    Console(file=console.file, width=max(console.width, natural), soft_wrap=True).print(table)


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ")


@click.group("models", cls=StreamscoreGroup)
@config_option
def models() -> None:
    """The versioned model store: versions, aliases, rollback, verification."""


@models.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_state
def list_versions(state: State, as_json: bool) -> None:
    """Versions with their key metrics and aliases."""
    store = _store(state)
    manifests = store.versions()
    aliases = store.aliases()
    if as_json:
        _echo_json([{**m.to_dict(), "aliases": _tags(aliases, m.version)} for m in manifests])
        return
    if not manifests:
        console.print(
            f"no versions of {escape(store.name)} in {escape(str(store.root))}: "
            f"run `streamscore train`",
            highlight=False,
        )
        return
    shown = [k for k in KEY_METRICS if any(k in m.metrics for m in manifests)]
    table = Table(title=Text(f"{store.name} in {store.root}"))
    table.add_column("version", justify="right")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("task")
    table.add_column("estimator")
    for metric in shown:
        table.add_column(metric, justify="right")
    table.add_column("aliases", no_wrap=True)
    for m in manifests:
        estimator = m.estimator.split("(")[0].rsplit(".", 1)[-1]
        cells = [f"{m.metrics[k]:.4f}" if k in m.metrics else "" for k in shown]
        table.add_row(
            str(m.version),
            _when(m.created_at)[:16],
            m.task,
            Text(estimator),
            *cells,
            ", ".join(_tags(aliases, m.version)),
        )
    _print_table(table)


@models.command()
@config_option
@click.argument("ref", metavar="VERSION|ALIAS")
@click.option("--json", "as_json", is_flag=True, help="the manifest as stored")
@pass_state
def show(state: State, ref: str, as_json: bool) -> None:
    """One version's manifest (a version number or an alias)."""
    store = _store(state)
    manifest = store.manifest(ref)
    if as_json:
        _echo_json(manifest.to_dict())
        return
    _print_manifest(manifest, _tags(store.aliases(), manifest.version))
    _print_profile(store, manifest)
    _print_live(state.config, manifest)
    _print_candidates(state.config, store, manifest)


def _print_profile(store: ModelStore, m: Manifest) -> None:
    """The reference profile stored with the version (what drift is measured against)."""
    from monitor.profile import PROFILE_FILE, stored_profile

    if PROFILE_FILE not in m.files:
        console.print("[bold]reference profile[/]: - (none stored: no drift counting)")
        return
    profile = stored_profile(store, m.version)
    if profile is None:
        console.print(f"[bold]reference profile[/]: {PROFILE_FILE} cannot be read", highlight=False)
        return
    table = Table(title=f"reference profile ({profile.rows:,} training rows)")
    for column in ("feature", "kind", "mean", "std", "missing", "bins / top values"):
        table.add_column(column)
    for name, feature in profile.features.items():
        data = feature.to_dict()
        if data["kind"] == "numeric":
            mean, std = data["mean"], data["std"]
            edges = data["edges"]
            spread = (
                f"{len(data['counts'])} bins, {edges[0]:.4g} … {edges[-1]:.4g}"
                if edges
                else "no values"
            )
            cells = ["-" if mean is None else f"{mean:.4g}", "-" if std is None else f"{std:.4g}"]
        else:
            spread = ", ".join(str(v) for v in data.get("values", [])[:5])
            cells = ["", ""]
        table.add_row(Text(name), data["kind"], *cells, f"{data['missing_rate']:.1%}", Text(spread))
    _print_table(table)
    if profile.predictions is not None:
        predicted = profile.predictions.to_dict()
        counts = predicted.get("counts") or []
        console.print(
            f"[bold]predictions profiled[/]: {profile.prediction_rows:,} held-out rows, "
            f"{predicted['kind']} ({len(counts)} buckets)",
            highlight=False,
        )


def _print_live(cfg: Config, m: Manifest) -> None:
    """Live metrics from the monitor's join state (``streamscore monitor``), beside held-out."""
    from monitor.joinstate import read_live

    live = read_live(cfg.monitor.state_path, m.version)
    if live is None:
        console.print(
            "[bold]live[/]: - (no labelled predictions in the monitor's state "
            f"{escape(str(cfg.monitor.state_path))})",
            highlight=False,
        )
        return
    metrics = live.metrics()
    shown = ", ".join(
        f"{k}={v:.4f}" + (f" (held-out {m.metrics[k]:.4f})" if k in m.metrics else "")
        for k, v in metrics.items()
        if k not in ("predictions", "labelled", "coverage") and v is not None
    )
    coverage = metrics["coverage"]
    console.print(
        f"[bold]live[/]: {escape(shown) or '-'}; {live.labelled:,} labelled of "
        f"{live.predictions:,} predictions"
        + (f" (coverage {coverage:.0%})" if coverage is not None else ""),
        highlight=False,
    )


def _live_text(live: Any) -> str:
    metrics = live.metrics()
    shown = ", ".join(
        f"{k}={v:.4f}"
        for k, v in metrics.items()
        if k in ("accuracy", "log_loss", "roc_auc", "mae", "rmse") and v is not None
    )
    return f"{shown or '-'} on {live.labelled:,} labelled"


def _print_candidates(cfg: Config, store: ModelStore, m: Manifest) -> None:
    """A shadow's live metrics beside production's on the same ids (the monitor's shadow join
    states), and a canary's beside production's, when this version is one of them."""
    from monitor.joinstate import read_live
    from monitor.shadow_join import sibling

    aliases = store.aliases()
    production = aliases.get(cfg.model_store.alias)
    w = cfg.worker
    path = cfg.monitor.state_path
    shadow = aliases.get(w.shadow_alias) if w.shadow_alias else None
    canary = aliases.get(w.canary_alias) if w.canary_alias else None
    if shadow is not None and production is not None and m.version in (shadow, production):
        theirs = read_live(sibling(path, "shadow"), shadow)
        ours = read_live(sibling(path, "paired"), production)
        text = (
            f"shadow v{shadow} ({w.shadow_alias}, {w.shadow_fraction:.0%} of ids): "
            f"{_live_text(theirs) if theirs else '-'}; production v{production} on the same "
            f"ids: {_live_text(ours) if ours else '-'}"
        )
        console.print(f"[bold]shadow[/]: {escape(text)}", highlight=False)
    if canary is not None and production is not None and m.version in (canary, production):
        theirs = read_live(path, canary)
        ours = read_live(path, production)
        text = (
            f"canary v{canary} ({w.canary_alias}, {w.canary_fraction:.0%} of ids): "
            f"{_live_text(theirs) if theirs else '-'}; production v{production}: "
            f"{_live_text(ours) if ours else '-'}"
        )
        console.print(f"[bold]canary[/]: {escape(text)}", highlight=False)


def _print_manifest(m: Manifest, aliases: list[str]) -> None:
    def line(key: str, value: Any) -> None:
        console.print(f"[bold]{key}[/]: {escape(str(value))}", highlight=False)

    line("name", m.name)
    line("version", m.version)
    line("aliases", ", ".join(aliases) or "-")
    line("created_at", m.created_at)
    line("task", m.task)
    line("estimator", m.estimator)
    line("artifact", f"{m.artifact} (sha256 {m.sha256})")
    for name, digest in sorted(m.files.items()):
        line("file", f"{name} (sha256 {digest})")
    line("libraries", ", ".join(f"{k} {v}" for k, v in sorted(m.libraries.items())))
    line("metrics", ", ".join(f"{k}={v:.4f}" for k, v in sorted(m.metrics.items())) or "-")
    if m.classes is not None:
        line("classes", ", ".join(str(c) for c in m.classes))
    if m.data is not None:
        line("data", f"{m.data.path} ({m.data.rows} rows, sha256 {m.data.sha256})")
    if m.imported is not None:
        line("imported", f"{m.imported.format} {m.imported.path} (sha256 {m.imported.sha256})")
    if m.gate is not None:
        reasons = "; ".join(str(r) for r in m.gate.get("reasons") or [])
        line("gate", "passed" if m.gate.get("passed") else f"failed: {reasons}")
    line("git_commit", m.git_commit or "-")
    line("parent", _version(m.parent) if m.parent is not None else "-")
    line("config", f"{len(m.config)} sections recorded (see --json)" if m.config else "-")
    features = Table(title=f"features ({len(m.features)}, in model order)")
    for column in ("#", "name", "dtype", "required", "default", "categories"):
        features.add_column(column)
    for i, f in enumerate(m.features):
        features.add_row(
            str(i),
            Text(f.name),
            f"{f.dtype} ({f.frame_dtype})" if f.frame_dtype else f.dtype,
            "yes" if f.required else "no",
            Text("" if f.default is None else str(f.default)),
            Text(", ".join(f.categories)),
        )
    _print_table(features)


@models.command()
@config_option
@click.argument("ref", metavar="VERSION|ALIAS")
@click.option("--alias", default=None, help="alias to move (default: [model_store] alias)")
@click.option("--reason", default="", help="recorded in the history")
@pass_state
def promote(state: State, ref: str, alias: str | None, reason: str) -> None:
    """Point an alias at a version.

    Running workers follow the alias and swap to the version within a second.
    """
    cfg = state.config
    alias = alias or cfg.model_store.alias
    from model_store.release import promote_and_announce

    _report(cfg, promote_and_announce(_store(state), cfg.kafka, ref, alias, reason=reason))


@models.command()
@config_option
@click.option("--alias", default=None, help="alias to move (default: [model_store] alias)")
@click.option("--reason", default="", help="recorded in the history")
@pass_state
def rollback(state: State, alias: str | None, reason: str) -> None:
    """Return an alias to its previous version.

    Repeated rollbacks walk further back; a rollback is never itself rolled back to.
    """
    cfg = state.config
    alias = alias or cfg.model_store.alias
    from model_store.release import rollback_and_announce

    _report(cfg, rollback_and_announce(_store(state), cfg.kafka, alias, reason=reason))


def _report(cfg: Config, move: AliasMove) -> None:
    from model_store.release import ANNOUNCE_TIMEOUT_S
    from streamscore.control import require_acknowledged

    event = move.event
    how = " (rolled back)" if event.action == "rollback" else ""
    console.print(
        f"{event.alias}: {_version(event.from_version)} -> v{event.to_version}{how}",
        highlight=False,
    )
    what = f"{event.alias} moved to v{event.to_version}"
    if not require_acknowledged(cfg.kafka, move.announced, what, ANNOUNCE_TIMEOUT_S):
        console.print(
            f"[dim]no notice on {escape(cfg.kafka.control_topic)} (Kafka not reachable): "
            f"workers pick the move up on their next store poll[/]",
            highlight=False,
        )


@models.command()
@config_option
@click.option("--alias", default=None, help="only this alias (default: all)")
@pass_state
def history(state: State, alias: str | None) -> None:
    """Every alias move, oldest first."""
    events = _store(state).history(alias)
    if not events:
        console.print("no alias moves yet", highlight=False)
        return
    table = Table(title="alias history")
    for column in ("seq", "at (UTC)", "alias", "action", "from", "to", "reason"):
        table.add_column(column)
    for e in events:
        table.add_row(
            str(e.seq),
            _when(e.at),
            e.alias,
            e.action,
            _version(e.from_version),
            f"v{e.to_version}",
            Text(e.reason),
        )
    _print_table(table)


@models.command()
@config_option
@pass_state
def verify(state: State) -> None:
    """Re-check every version's checksums (exit 2 if any fails).

    Also checks that each manifest is readable (and signed, with [model_store] signing_key),
    that its artifact is loadable here (skops with trusted types only, joblib only with
    allow_pickle), its extra files unchanged, and that the scikit-learn it was trained with
    matches this one (major.minor).
    """
    store = _store(state)
    results = store.verify()
    if not results:
        console.print(f"no versions of {escape(store.name)} to verify", highlight=False)
        return
    table = Table(title=Text(f"verification of {store.name}"))
    table.add_column("version", justify="right")
    table.add_column("result")
    table.add_column("problem", overflow="fold")
    for r in results:
        table.add_row(str(r.version), "[green]ok[/]" if r.ok else "[red]FAILED[/]", Text(r.problem))
    _print_table(table)
    if not all(r.ok for r in results):
        sys.exit(EXIT_ERROR)
