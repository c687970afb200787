"""``streamscore publish`` and ``streamscore tail``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from app.clitools import StreamscoreGroup, config_option, console, pass_state
from streamscore import jsonio, wire
from streamscore.kafka_admin import ensure_topics


@click.command("publish")
@config_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="default: by extension")
@click.option("--key-field", default=None, help="event field to use as the Kafka key")
@click.option("--rate", type=click.FloatRange(min=0.001), default=None, help="events per second")
@click.option("--topic", default=None, help="default: [kafka] input_topic")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="publish at most N events")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="publish the file N times over",
)
@click.option(
    "--loop", is_flag=True, help="publish the file over and over until Ctrl-C (needs --rate)"
)
@pass_state
def publish(
    state: Any,
    file: Path,
    fmt: str | None,
    key_field: str | None,
    rate: float | None,
    topic: str | None,
    limit: int | None,
    repeat: int,
    loop: bool,
) -> None:
    """Publish a JSON-lines or CSV file as events to the input topic.

    --repeat N and --loop (with --rate) make steady traffic from a small file; events are sent
    as they are on every pass (same ids and keys).
    """
    from itertools import islice

    from producer.files import count_events, detect_format, repeat_events
    from producer.publisher import Publisher

    if loop and rate is None:
        raise click.UsageError("--loop publishes without end: give it a --rate, e.g. --rate 200")
    if loop and repeat != 1:
        raise click.UsageError("use --loop or --repeat N, not both")
    cfg = state.config
    fmt = detect_format(file, fmt)
    total: int | None = None if loop else count_events(file, fmt) * repeat
    if limit is not None:
        total = limit if total is None else min(total, limit)
    from streamscore.preflight import check_bootstrap

    check_bootstrap(cfg.kafka)  # a wrong address: one line within seconds, not a 30 s timeout
    ensure_topics(cfg.kafka)
    events = islice(repeat_events(file, fmt, None if loop else repeat), limit)
    with (
        Publisher(cfg.kafka, topic=topic) as publisher,
        Progress(
            TextColumn("publishing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("publish", total=total)
        try:
            report = publisher.publish(
                events,
                key_field=key_field,
                rate=rate,
                on_progress=lambda n: progress.advance(task, n),
            )
        except KeyboardInterrupt:  # --loop ends here; what was sent is flushed and counted
            report = publisher.finish()
    target = topic or cfg.kafka.input_topic
    console.print(
        f"sent {report.sent}, failed {report.failed} to {target} "
        f"in {report.seconds:.2f}s ({report.rate:,.0f} events/s)"
    )
    if report.failed:
        console.print(f"[red]first failure:[/] {escape(report.first_error)}")
        sys.exit(2)


@click.command("tail")
@config_option
@click.option("--dead-letters", is_flag=True, help="read the dead-letter topic instead")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--from-beginning", is_flag=True, help="start at the oldest record")
@click.option("--follow", "-f", is_flag=True, help="keep printing new records")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (for piping)")
@pass_state
def tail(
    state: Any, dead_letters: bool, limit: int, from_beginning: bool, follow: bool, as_json: bool
) -> None:
    """Print predictions (or dead letters with their error headers)."""
    from producer.results import read_topic

    cfg = state.config
    topic = cfg.kafka.dead_letter_topic if dead_letters else cfg.kafka.output_topic
    results = read_topic(
        cfg.kafka, topic, limit=limit, from_beginning=from_beginning, follow=follow
    )
    if not follow:
        ordered = sorted(results, key=lambda r: (r.timestamp, r.partition, r.offset))
        results = iter(ordered[:limit] if from_beginning else ordered[-limit:])
    if as_json or follow:
        for result in results:
            line: dict[str, Any] = {
                "partition": result.partition,
                "offset": result.offset,
                "key": result.key.decode("utf-8", "replace") if result.key else None,
            }
            if dead_letters:
                line["value"] = result.raw.decode("utf-8", "replace")
                line["headers"] = result.headers
            else:
                line["value"] = result.value
            sys.stdout.write(jsonio.dumps(line).decode() + "\n")
            sys.stdout.flush()
        return
    rows = list(results)
    table = Table(title=f"{topic} ({len(rows)} shown)")
    if dead_letters:
        for column in ("partition/offset", "stage", "error", "source", "value"):
            table.add_column(column, overflow="fold")
        for r in rows:
            h = r.headers
            source = (
                f"{h.get(wire.H_SOURCE_TOPIC, '')}"
                f"[{h.get(wire.H_SOURCE_PARTITION, '')}]"
                f"@{h.get(wire.H_SOURCE_OFFSET, '')}"
            )
            table.add_row(
                f"{r.partition}/{r.offset}",
                h.get(wire.H_STAGE, ""),
                f"{h.get(wire.H_ERROR_CLASS, '')}: {h.get(wire.H_ERROR_MESSAGE, '')}",
                source,
                r.raw[:80].decode("utf-8", "replace"),
            )
    else:
        for column in ("id", "prediction", "probabilities", "model", "partition/offset"):
            table.add_column(column, overflow="fold")
        for r in rows:
            v = r.value if isinstance(r.value, dict) else {}
            probs = v.get("probabilities") or {}
            model = v.get("model") or {}
            table.add_row(
                str(v.get("id", "")),
                str(v.get("prediction", "")),
                " ".join(f"{k}:{p:.3f}" for k, p in probs.items()),
                f"{model.get('name', '')} v{model.get('version', '')}",
                f"{r.partition}/{r.offset}",
            )
    console.print(table)


@click.group("producer", cls=StreamscoreGroup)
@config_option
def group() -> None:
    """Publish events and read results (python -m producer)."""


group.add_command(publish)
group.add_command(tail)
