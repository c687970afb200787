"""The ``streamscore`` command. Each subcommand lives in an ``app`` module, loaded on first use."""

from __future__ import annotations

import importlib
from typing import Any

import click

from app.clitools import StreamscoreGroup, config_option
from streamscore import __version__

#: name -> "module:attribute" of a click command; imported only when that command runs, so
#: ``streamscore worker`` never imports training code and starts fast. Kept as strings for that
#: reason; tests/app/test_entry_points.py checks that every one resolves to a command.
SUBCOMMANDS: dict[str, str] = {
    "broker": "app.broker_cli:broker",
    "models": "app.models_import_cli:models",  # app.models_cli's group + `test` + `import`
    "train": "app.train_cli:train",
    "demo-data": "app.train_cli:demo_data",
    "trainer": "app.trainer_cli:trainer",
    "worker": "app.worker_cli:worker",
    "publish": "app.producer_cli:publish",
    "tail": "app.producer_cli:tail",
    "status": "app.status_cli:status",
    "demo": "app.demo:demo",
    "monitor": "app.monitor_cli:monitor",
}


class LazyGroup(StreamscoreGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command: Any = getattr(module, attr)
        return command  # type: ignore[no-any-return]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.version_option(__version__, prog_name="streamscore")
def main() -> None:
    """Score Kafka events with a versioned scikit-learn model.

    \b
    Typical journey:
      streamscore broker start          # embedded Kafka for local work
      streamscore demo-data && streamscore train
      streamscore models list
      streamscore worker --processes 2
      streamscore publish var/data/events.jsonl
      streamscore status                # the fleet: members, versions, rate, p99, lag
      streamscore tail
    """


if __name__ == "__main__":  # pragma: no cover
    main()
