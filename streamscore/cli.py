"""The ``streamscore`` command. Subcommands live with their packages and load on first use."""

from __future__ import annotations

import importlib
from typing import Any

import click

from streamscore import __version__
from streamscore.clitools import StreamscoreGroup, config_option

#: name -> "module:attribute" of a click command; imported only when that command runs, so
#: ``streamscore worker`` never imports training code and starts fast.
SUBCOMMANDS: dict[str, str] = {
    "broker": "streamscore.broker_cli:broker",
    "models": "model_store.cli:models",
    "train": "training.cli:train",
    "demo-data": "training.cli:demo_data",
    "trainer": "training.service_cli:trainer",
    "worker": "worker.cli:worker",
    "publish": "producer.cli:publish",
    "tail": "producer.cli:tail",
    "demo": "streamscore.demo:demo",
}


#: Subcommands one package contributes to another's group, loaded like SUBCOMMANDS: judging
#: an imported model is training code, which ``model_store`` never imports, so
#: ``streamscore models import`` lives in ``training``. group -> name -> (target, short help).
CONTRIBUTED: dict[str, dict[str, tuple[str, str]]] = {
    "models": {
        "import": (
            "training.import_cli:import_command",
            "Register a fitted model: a joblib/pickle file or an MLflow model folder.",
        ),
    },
}


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class DeferredCommand(click.Command):
    """A subcommand listed by name and help, imported only when it runs (or shows --help)."""

    def __init__(self, name: str, target: str, short_help: str) -> None:
        super().__init__(name, short_help=short_help, help=short_help)
        self.target = target

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        command: click.Command = _load(self.target)
        return command.make_context(info_name, args, parent=parent, **extra)


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
        if isinstance(command, click.Group):
            for name, (sub_target, short_help) in CONTRIBUTED.get(cmd_name, {}).items():
                if name not in command.commands:
                    command.add_command(DeferredCommand(name, sub_target, short_help))
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
      streamscore tail
    """


if __name__ == "__main__":  # pragma: no cover
    main()
