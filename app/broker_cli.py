"""``streamscore broker start|stop|status``: the embedded Tansu broker (memory-only)."""

from __future__ import annotations

import datetime as dt

import click

from app.clitools import State, StreamscoreGroup, config_option, console, pass_state
from broker import EmbeddedBroker, kafka_answers
from streamscore.config import Config


@click.group("broker", cls=StreamscoreGroup)
@config_option
def broker() -> None:
    """The embedded Kafka broker (Tansu, memory-only) for demos and local work.

    It keeps everything in memory: `broker stop` (or a reboot) loses every topic and offset.
    """


def serves_config(cfg: Config, embedded: EmbeddedBroker) -> bool:
    """True when ``[kafka] bootstrap_servers`` points at the embedded broker."""
    servers = [s.strip() for s in cfg.kafka.bootstrap_servers.split(",") if s.strip()]
    return embedded.address in servers


@broker.command()
@config_option
@pass_state
def start(state: State) -> None:
    """Start the broker on [broker] host:port and create the configured topics."""
    from streamscore.kafka_admin import ensure_topics

    cfg = state.config
    embedded = EmbeddedBroker(cfg.broker)
    status = embedded.start()
    if status.already_running:
        console.print(f"already running ({status.describe()})", highlight=False, soft_wrap=True)
        if status.address != embedded.address:
            console.print(
                f"[yellow]note:[/] the configuration asks for {embedded.address}; "
                f"`streamscore broker stop` first to move it",
                highlight=False,
                soft_wrap=True,
            )
    else:
        console.print(
            f"started ({status.describe()}); log: {embedded.log_file}",
            highlight=False,
            soft_wrap=True,
        )
    if serves_config(cfg, embedded):
        counts = ensure_topics(cfg.kafka)
        console.print(
            "topics: "
            + ", ".join(f"{t} ({n} partition{'s' * (n != 1)})" for t, n in counts.items()),
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(
            f"[kafka] bootstrap_servers = {cfg.kafka.bootstrap_servers!r} is not this broker: "
            f"topics not created here",
            highlight=False,
            soft_wrap=True,
        )


@broker.command()
@config_option
@pass_state
def stop(state: State) -> None:
    """Stop the broker started by `broker start` (everything in it is lost)."""
    embedded = EmbeddedBroker(state.config.broker)
    current = embedded.status()
    if current is not None and embedded.stop():
        console.print(f"stopped ({current.describe()})", highlight=False, soft_wrap=True)
    else:
        console.print("not running", highlight=False, soft_wrap=True)


@broker.command()
@config_option
@pass_state
@click.pass_context
def status(ctx: click.Context, state: State) -> None:
    """Address, pid and uptime of the embedded broker; exit code 1 when it is not running."""
    embedded = EmbeddedBroker(state.config.broker)
    current = embedded.status()
    if current is None:
        console.print(f"not running (run dir {embedded.run_dir})", highlight=False, soft_wrap=True)
        ctx.exit(1)
    uptime = dt.timedelta(seconds=int(current.uptime_s))
    answering = "answering" if kafka_answers(current.host, current.port) else "NOT answering"
    console.print(
        f"running: {current.address}, pid {current.pid}, up {uptime}, {answering}; "
        f"log: {embedded.log_file}",
        highlight=False,
        soft_wrap=True,
    )
