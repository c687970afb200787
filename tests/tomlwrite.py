"""A tiny TOML writer for test configs (str, int, float, bool, lists and nested tables)."""

from __future__ import annotations

from typing import Any

import orjson


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return orjson.dumps(v).decode()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else orjson.dumps(k).decode()


def dumps_toml(tables: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []

    def emit(prefix: str, table: dict[str, Any]) -> None:
        lines.append(f"[{prefix}]")
        nested = {}
        for key, value in table.items():
            if isinstance(value, dict) and key in ("gate", "schedule"):
                nested[key] = value
            else:
                lines.append(f"{_key(key)} = {_value(value)}")
        lines.append("")
        for key, value in nested.items():
            emit(f"{prefix}.{key}", value)

    for name, table in tables.items():
        emit(name, table)
    return "\n".join(lines)
