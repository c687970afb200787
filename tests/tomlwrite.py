"""Write config tables as TOML (the standard library only reads it): for generated configs
such as the test suite's and the benchmark's worker configs; :mod:`tomllib` reads the text
back to the same data."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def dumps_toml(tables: Mapping[str, Any]) -> str:
    """TOML text for ``{section: {key: value}}``; nested tables are written inline.

    Values: str, int, float (also inf/nan), bool, :class:`~pathlib.Path`, lists and dicts of
    those. Enough for config files; :mod:`tomllib` reads it back to the same data.
    """
    lines: list[str] = []
    for section, table in tables.items():
        if not isinstance(table, Mapping):
            lines.append(f"{_toml_key(section)} = {_toml_value(table)}")
            continue
        lines.append(f"[{_toml_key(section)}]")
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items())
        lines.append("")
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_string(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
    escapes |= {"\f": "\\f", "\r": "\\r"}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (str, Path)):
        return _toml_string(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML: {value!r}")
