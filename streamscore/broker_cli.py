"""``streamscore broker start|stop|status``: the embedded Tansu broker."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from streamscore.broker import EmbeddedBroker
from streamscore.clitools import StreamscoreGroup, config_option, console, pass_state


@click.group("broker", cls=StreamscoreGroup)
@config_option
def broker() -> None:
    """The embedded Kafka broker (Tansu, memory-only) for demos and local work."""


@broker.command()
@config_option
@pass_state
def start(state: Any) -> None:
    """Start the broker on [broker] host:port and create the configured topics."""
    from streamscore.kafka_admin import ensure_topics

    cfg = state.config
    embedded = EmbeddedBroker(cfg.broker)
    status = embedded.start()
    if status.already_running:
        console.print(f"already running (pid {status.pid}, {status.address})")
    else:
        console.print(f"started (pid {status.pid}, {status.address}); log: {embedded.log_file}")
    if cfg.kafka.bootstrap_servers == embedded.address:
        counts = ensure_topics(cfg.kafka)
        console.print(
            "topics: " + ", ".join(f"{t} ({n} partitions)" for t, n in sorted(counts.items()))
        )


@broker.command()
@config_option
@pass_state
def stop(state: Any) -> None:
    """Stop the broker started by `broker start` (everything in it is lost)."""
    embedded = EmbeddedBroker(state.config.broker)
    if embedded.stop():
        console.print("stopped")
    else:
        console.print("not running")


@broker.command()
@config_option
@pass_state
def status(state: Any) -> None:
    """Address, pid and uptime of the embedded broker."""
    current = EmbeddedBroker(state.config.broker).status()
    if current is None:
        console.print("not running")
        raise SystemExit(1)
    uptime = dt.timedelta(seconds=int(current.uptime_s))
    console.print(f"running: {current.address}, pid {current.pid}, up {uptime}")
