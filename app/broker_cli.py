"""``streamscore broker start|stop|status``: the embedded Tansu broker (memory-only), or Apache
Kafka itself (``--engine kafka``: Java 17+ and Maven, data on disk under ``[broker] run_dir``)."""

from __future__ import annotations

import datetime as dt

import click

from app.clitools import State, StreamscoreGroup, config_option, console, pass_state
from broker import EmbeddedBroker, kafka_answers
from broker.kafka import KafkaBroker
from streamscore.config import Config
from streamscore.exceptions import BrokerError

ENGINES = ("tansu", "kafka")
engine_option = click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="tansu",
    show_default=True,
    help="tansu: the embedded broker (memory-only, starts in ms); kafka: Apache Kafka "
    "4.4.0 from Maven Central (Java 17+ and mvn; 10-20 s to start, data kept on disk).",
)


@click.group("broker", cls=StreamscoreGroup)
@config_option
def broker() -> None:
    """A local Kafka broker for demos and local work: Tansu (default) or Apache Kafka.

    Tansu keeps everything in memory: `broker stop` (or a reboot) loses every topic and offset.
    Apache Kafka (`--engine kafka`) keeps its log under [broker] run_dir/kafka.
    """


def serves_config(cfg: Config, embedded: EmbeddedBroker | KafkaBroker) -> bool:
    """True when ``[kafka] bootstrap_servers`` points at the embedded broker."""
    servers = [s.strip() for s in cfg.kafka.bootstrap_servers.split(",") if s.strip()]
    return embedded.address in servers


def kafka_broker(cfg: Config) -> KafkaBroker:
    """The Apache Kafka node of ``[broker]``: same host, port and run_dir as Tansu's."""
    return KafkaBroker(
        run_dir=cfg.broker.run_dir,
        host=cfg.broker.host,
        port=cfg.broker.port,
        start_timeout_ms=max(cfg.broker.start_timeout_ms, 180_000),
    )


@broker.command()
@config_option
@engine_option
@pass_state
def start(state: State, engine: str) -> None:
    """Start the broker on [broker] host:port and create the configured topics."""
    from streamscore.kafka_admin import ensure_topics

    cfg = state.config
    embedded: EmbeddedBroker | KafkaBroker
    other: EmbeddedBroker | KafkaBroker
    if engine == "kafka":
        embedded, other = kafka_broker(cfg), EmbeddedBroker(cfg.broker)
    else:
        embedded, other = EmbeddedBroker(cfg.broker), kafka_broker(cfg)
    running_other = other.status()
    if running_other is not None:
        raise BrokerError(
            f"the other engine already runs from {cfg.broker.run_dir} "
            f"({running_other.describe()}): `streamscore broker stop` first"
        )
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
    """Stop the broker started by `broker start` (Tansu loses everything; Kafka keeps its log)."""
    stopped = False
    for engine in (EmbeddedBroker(state.config.broker), kafka_broker(state.config)):
        current = engine.status()
        if current is not None and engine.stop():
            console.print(f"stopped ({current.describe()})", highlight=False, soft_wrap=True)
            stopped = True
    if not stopped:
        console.print("not running", highlight=False, soft_wrap=True)


@broker.command()
@config_option
@pass_state
@click.pass_context
def status(ctx: click.Context, state: State) -> None:
    """Engine, address, pid and uptime of the local broker; exit code 1 when none runs."""
    embedded: EmbeddedBroker | KafkaBroker = EmbeddedBroker(state.config.broker)
    current = embedded.status()
    if current is None:
        embedded = kafka_broker(state.config)
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
