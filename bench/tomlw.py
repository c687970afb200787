"""A tiny TOML writer for the configs of the worker subprocesses (as the tests do)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps_toml(tables: Mapping[str, Mapping[str, Any]]) -> str:
    lines: list[str] = []
    for section, table in tables.items():
        lines.append(f"[{_key(section)}]")
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items())
        lines.append("")
    return "\n".join(lines)
