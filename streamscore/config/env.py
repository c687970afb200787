"""Environment overrides: ``STREAMSCORE__SECTION__KEY=value`` (nested tables joined by ``__``).

The one place that reads settings from the environment. Values stay text (:class:`EnvValue`)
until :mod:`streamscore.config.coerce` parses them against the field's declared type, so an
error can name the variable it came from.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamscore.config.schema import Config
from streamscore.exceptions import ConfigError

ENV_PREFIX = "STREAMSCORE__"
ENV_CONFIG_FILE = "STREAMSCORE_CONFIG"
DEFAULT_CONFIG_FILE = "config.toml"


@dataclass(frozen=True)
class EnvValue:
    """A raw string from the environment; parsed against the field's declared type."""

    variable: str
    text: str


def resolve_config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else ``$STREAMSCORE_CONFIG``, else ``./config.toml``."""
    chosen = path or os.environ.get(ENV_CONFIG_FILE) or DEFAULT_CONFIG_FILE
    return Path(chosen).expanduser().resolve()


def apply_env(data: dict[str, Any], environ: Mapping[str, str], where: str) -> None:
    """Put every ``STREAMSCORE__...`` variable of ``environ`` into the parsed TOML ``data``."""
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError(
                f"environment variable {name}: expected {ENV_PREFIX}SECTION__KEY, "
                f"e.g. {ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS"
            )
        _apply_one(data, name, value, parts, where)


def _apply_one(data: dict[str, Any], name: str, value: str, parts: list[str], where: str) -> None:
    cls: Any = Config
    target = data
    for depth, part in enumerate(parts):
        hints = typing.get_type_hints(cls)
        if part not in hints or part == "source":
            known = ", ".join(sorted(k for k in hints if k != "source"))
            raise ConfigError(
                f"environment variable {name}: unknown key {part!r} in section "
                f"[{'.'.join(parts[:depth]) or 'top level'}]; known keys: {known}"
            )
        hint = hints[part]
        if depth == len(parts) - 1:
            target[part] = EnvValue(name, value)
            return
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            raise ConfigError(f"environment variable {name}: {part!r} is not a section")
        nested = target.setdefault(part, {})
        if not isinstance(nested, dict):
            raise ConfigError(
                f"{where}: {part} = {nested!r} must be a table [{part}] for "
                f"{name} to override a key in it"
            )
        target = nested
        cls = hint
