"""What every command line of streamscore shares: the ``--config`` option and error reporting."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from streamscore.config import Config, load_config
from streamscore.exceptions import GateFailed, StreamscoreError

F = TypeVar("F", bound=Callable[..., Any])

console = Console(soft_wrap=True)  # lines are not wrapped: paths and ids stay greppable
# Errors are one logical line each: no wrapping, so they can be grepped and read in logs.
err_console = Console(stderr=True, soft_wrap=True)

#: Exit codes: 0 ok, 1 unexpected crash, 2 a streamscore error (bad input, refused operation),
#: 3 the quality gate refused promotion.
EXIT_ERROR = 2
EXIT_GATE_FAILED = 3


class State:
    """Per-invocation state: where the config is, loaded once on first use."""

    def __init__(self) -> None:
        self.config_path: Path | None = None
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


pass_state = click.make_pass_decorator(State, ensure=True)


def _set_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(State).config_path = value


#: ``--config PATH``, accepted by every command and group (default: $STREAMSCORE_CONFIG,
#: then ./config.toml).
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    expose_value=False,
    is_eager=True,
    callback=_set_config,
    help="config file (default: $STREAMSCORE_CONFIG, then ./config.toml)",
)


class StreamscoreGroup(click.Group):
    """A click group that turns streamscore errors into a one-line message and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GateFailed as exc:
            err_console.print(f"[bold red]gate failed:[/] {escape(str(exc))}", highlight=False)
            sys.exit(EXIT_GATE_FAILED)
        except StreamscoreError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            sys.exit(EXIT_ERROR)


def setup_logging(level: str = "INFO", *, file: Path | None = None) -> None:
    """Log lines as ``time level name: message`` to stderr (and a file when given)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file))
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)


def command(func: F) -> F:
    """Decorate a command function so that it also accepts ``--config``."""
    return functools.wraps(func)(config_option(func))  # type: ignore[return-value]
