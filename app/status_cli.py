"""``streamscore status``: the group's members from their status records, as a table or JSON."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from app.clitools import State, config_option, console, pass_state
from streamscore import jsonio

if TYPE_CHECKING:
    from worker.fleet_view import Fleet

LIVE_STATES = ("ready", "waiting")
STATE_STYLE = {"ready": "green", "waiting": "yellow", "stopped": "dim", "gone": "red"}


@click.command("status")
@config_option
@click.option("--watch", "-w", is_flag=True, help="refresh until Ctrl-C")
@click.option(
    "--every",
    type=click.FloatRange(min=0.5),
    default=2.0,
    show_default=True,
    help="seconds between refreshes with --watch",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=0,
    help="first wait up to this many seconds until every live member is ready (scripts)",
)
@click.option("--json", "as_json", is_flag=True, help="the fleet as one JSON object (for scripts)")
@pass_state
def status(state: State, watch: bool, every: float, wait_s: float, as_json: bool) -> None:
    """The fleet at a glance: every member of the group, what it serves, its last minute.

    Read from the member-status records the workers publish on the control topic every
    [worker] status_interval_ms; a member silent for [kafka] session_timeout_ms is shown as
    gone. Exit code 1 when no member is ready.
    """
    from worker.fleet_view import read_fleet

    cfg = state.config

    def read() -> Fleet:
        return read_fleet(cfg.kafka, interval_ms=cfg.worker.status_interval_ms)

    fleet = read()
    deadline = time.monotonic() + wait_s
    while not _all_ready(fleet) and time.monotonic() < deadline:
        time.sleep(0.5)
        fleet = read()
    if as_json and not watch:
        sys.stdout.write(jsonio.dumps(fleet.to_dict()).decode() + "\n")
    elif not watch:
        console.print(render(fleet))
    else:
        try:
            with Live(render(fleet), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(every)
                    fleet = read()
                    if as_json:
                        sys.stdout.write(jsonio.dumps(fleet.to_dict()).decode() + "\n")
                        sys.stdout.flush()
                    else:
                        live.update(render(fleet), refresh=True)
        except KeyboardInterrupt:
            pass
    if not fleet.ready:
        sys.exit(1)


def _all_ready(fleet: Fleet) -> bool:
    return bool(fleet.ready) and all(m.state != "waiting" for m in fleet.members)


def render(fleet: Fleet) -> Group:
    """The members table with a sum row, and a line about who is missing."""
    total = fleet.total()
    table = Table(
        title=(
            f"group {fleet.group}: {total['ready']} of {len(fleet.members)} members ready, "
            f"serving {', '.join(total['serving']) or 'nothing'}, partitions of "
            f"{_topics(fleet)}; events/s and p99 over the last minute"
        ),
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
    )
    for name, justify in (
        ("member", "left"),
        ("state", "left"),
        ("serving", "left"),
        ("parts", "left"),
        ("events/s", "right"),
        ("p99 ms", "right"),
        ("lag", "right"),
        ("dead", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "member", min_width=len(name))  # type: ignore[arg-type]
    for m in fleet.members:
        r = m.record
        style = STATE_STYLE.get(m.state, "")
        table.add_row(
            str(r.get("worker")),
            Text(m.state if m.state in LIVE_STATES else f"{m.state} {m.age_s:.0f}s", style=style),
            _serving(r),
            _partitions(r.get("partitions") or []),
            _number(r.get("events_per_s"), 1),
            _number(r.get("p99_ms"), 1),
            _number(sum((r.get("lag") or {}).values())),
            _dead(r.get("dead_letters_by_stage") or {}),
        )
    table.add_section()
    table.add_row(
        Text("all", style="bold"),
        f"{total['members']} live",
        ", ".join(sorted({_serving(m.record) for m in fleet.members if m.state in LIVE_STATES}))
        or "-",
        str(total["partitions"]),
        _number(total["events_per_s"], 1),
        _number(total["p99_ms"], 1),
        _number(total["lag"]),
        _dead(total["dead_letters_by_stage"]),
    )
    notes: list[Any] = [table]
    for shadow in total.get("shadows") or []:
        notes.append(Text(shadow_line(shadow)))
    if total["dead_letters"]:
        stages = ", ".join(f"{k} {v:,}" for k, v in sorted(total["dead_letters_by_stage"].items()))
        notes.append(Text(f"dead letters by stage: {stages} (streamscore tail --dead-letters)"))
    if not fleet.members:
        notes.append(
            Text(
                "no member has reported in the last minutes: is a worker running for this "
                "config (streamscore worker)? Workers publish their status every "
                "[worker] status_interval_ms.",
                style="yellow",
            )
        )
    wrong = [(m, w) for m in fleet.members for w in (m.record.get("wrong_topic") or {})]
    for m, where in wrong:
        notes.append(
            Text(
                f"{m.worker}: most events of {where} failed the schema: wrong topic?",
                style="bold red",
            )
        )
    return Group(*notes)


def shadow_line(shadow: dict[str, Any]) -> str:
    """``shadow candidate v2 beside v1: 1,200 scored, agreement 96.5 %, ...``"""
    parts = [f"{shadow['scored']:,} scored"]
    if shadow.get("agreement") is not None:
        parts.append(f"agreement {shadow['agreement']:.1%}")
    if shadow.get("probability_diff") is not None:
        parts.append(f"mean |probability difference| {shadow['probability_diff']:.4f}")
    if shadow.get("mae") is not None:
        parts.append(f"MAE between the two {shadow['mae']:.4g}")
    skipped = shadow.get("skipped") or {}
    if any(skipped.values()):
        parts.append("skipped " + ", ".join(f"{k} {v:,}" for k, v in sorted(skipped.items()) if v))
    return (
        f"shadow {shadow.get('alias')} v{shadow['shadow_version']} beside "
        f"v{shadow['production_version']}: {', '.join(parts)} "
        f"(live metrics: streamscore models show {shadow['shadow_version']})"
    )


def _serving(record: dict[str, Any]) -> str:
    serving = record.get("serving") or {}
    if not serving:
        return "nothing"
    canary = (record.get("candidates") or {}).get("canary") or {}
    shown = []
    for alias, v in serving.items():
        if alias == canary.get("alias"):
            shown.append(f"canary v{v} {float(canary.get('fraction') or 0):.0%}")
        else:
            shown.append(f"v{v}")
    shadow = (record.get("candidates") or {}).get("shadow") or {}
    if shadow.get("version") is not None:
        shown.append(f"shadow v{shadow['version']}")
    return ", ".join(shown)


def _partitions(names: list[str]) -> str:
    """``topic[0]``, ``topic[1]`` -> ``0,1`` (the title names the topic)."""
    return ",".join(n.rpartition("[")[2].rstrip("]") for n in names) or "-"


def _dead(by_stage: dict[str, int]) -> str:
    return f"{sum(by_stage.values()):,}"


def _topics(fleet: Fleet) -> str:
    names = {n.rpartition("[")[0] for m in fleet.members for n in m.record.get("partitions") or []}
    return ", ".join(sorted(names)) or "-"


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{float(value):,.{digits}f}"
