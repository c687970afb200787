"""One setting's value checked against its declared type and range, and converted.

A value comes from TOML (already typed) or from the environment (:class:`EnvValue`, text to
parse). Errors name the file, the section, the key, the value and what was expected.
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from streamscore.config.env import EnvValue
from streamscore.config.schema import Secret
from streamscore.exceptions import ConfigError


def fail(where: str, key: str, value: Any, expected: str) -> ConfigError:
    """``<file>: [section] key = value (from VARIABLE) is invalid: expected ...``."""
    section, _, name = key.rpartition(".")
    shown = value.text if isinstance(value, EnvValue) else value
    origin = f" (from {value.variable})" if isinstance(value, EnvValue) else ""
    place = f"[{section}] {name}" if section else name
    return ConfigError(f"{where}: {place} = {shown!r}{origin} is invalid: expected {expected}")


def coerce(
    value: Any, hint: Any, meta: Mapping[str, Any], *, key: str, where: str, base: Path
) -> Any:
    """``value`` as the field type ``hint`` (``meta``: the field's range and choices)."""
    scalar = _SCALARS.get(hint)
    if scalar is not None:
        return scalar(value, meta, key, where, base)
    if typing.get_origin(hint) is list:
        return _coerce_list(value, hint, key=key, where=where, base=base)
    if typing.get_origin(hint) is dict:
        return _coerce_table(value, hint, key=key, where=where, base=base)
    if isinstance(hint, types.UnionType) or hint is Any:
        return value
    raise TypeError(f"config field {key} has an unsupported type {hint!r}")  # pragma: no cover


def _env_text(value: Any) -> str | None:
    return value.text if isinstance(value, EnvValue) else None


def _coerce_bool(value: Any, _meta: Mapping[str, Any], key: str, where: str, _base: Path) -> bool:
    text = _env_text(value)
    if text is not None:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
    elif isinstance(value, bool):
        return value
    raise fail(where, key, value, "true or false")


def _coerce_int(value: Any, meta: Mapping[str, Any], key: str, where: str, _base: Path) -> int:
    number: Any = value
    text = _env_text(value)
    if text is not None:
        try:
            number = int(text.strip().replace("_", ""))
        except ValueError:
            raise fail(where, key, value, "a whole number") from None
    if isinstance(number, bool) or not isinstance(number, int):
        raise fail(where, key, value, "a whole number")
    check_range(number, meta, key=key, where=where, raw=value)
    return number


def _coerce_float(value: Any, meta: Mapping[str, Any], key: str, where: str, _base: Path) -> float:
    number: Any = value
    text = _env_text(value)
    if text is not None:
        try:
            number = float(text.strip())
        except ValueError:
            raise fail(where, key, value, "a number") from None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise fail(where, key, value, "a number")
    if not math.isfinite(number):
        raise fail(where, key, value, "a finite number")
    check_range(float(number), meta, key=key, where=where, raw=value)
    return float(number)


def _string(value: Any, meta: Mapping[str, Any], key: str, where: str) -> str:
    text = _env_text(value)
    string = text if isinstance(value, EnvValue) else value
    if not isinstance(string, str):
        raise fail(where, key, value, "a string")
    choices = meta.get("choices")
    if choices and string not in choices:
        raise fail(where, key, value, "one of " + ", ".join(repr(c) for c in choices))
    return string


def _coerce_str(value: Any, meta: Mapping[str, Any], key: str, where: str, _base: Path) -> str:
    return _string(value, meta, key, where)


def _coerce_path(value: Any, meta: Mapping[str, Any], key: str, where: str, base: Path) -> Path:
    """Relative paths resolve against the config file's folder, never the current directory."""
    path = Path(_string(value, meta, key, where)).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _coerce_secret(
    value: Any, meta: Mapping[str, Any], key: str, where: str, _base: Path
) -> Secret:
    return Secret(_string(value, meta, key, where))


_Scalar = Callable[[Any, Mapping[str, Any], str, str, Path], Any]
_SCALARS: dict[Any, _Scalar] = {
    bool: _coerce_bool,
    int: _coerce_int,
    float: _coerce_float,
    str: _coerce_str,
    Path: _coerce_path,
    Secret: _coerce_secret,
}


def _parse_env_toml(value: Any, kind: type, *, key: str, where: str) -> Any:
    """An environment value holding a TOML list or table; TOML values pass through."""
    text = _env_text(value)
    if text is None:
        return value
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        example = '["a", "b"]' if kind is list else "{ key = 1.0 }"
        raise fail(where, key, value, f"a TOML {kind.__name__} like {example}") from None


def _coerce_list(value: Any, hint: Any, *, key: str, where: str, base: Path) -> list[Any]:
    parsed = _parse_env_toml(value, list, key=key, where=where)
    if not isinstance(parsed, list):
        raise fail(where, key, value, "a list")
    item_hint = typing.get_args(hint)[0]
    return [
        coerce(v, item_hint, {}, key=f"{key}[{i}]", where=where, base=base)
        for i, v in enumerate(parsed)
    ]


def _coerce_table(value: Any, hint: Any, *, key: str, where: str, base: Path) -> dict[str, Any]:
    parsed = _parse_env_toml(value, dict, key=key, where=where)
    if not isinstance(parsed, Mapping):
        raise fail(where, key, value, "a table")
    args = typing.get_args(hint)
    value_hint = args[1] if len(args) == 2 else Any
    if value_hint is Any:
        return dict(parsed)
    return {
        str(k): coerce(v, value_hint, {}, key=f"{key}.{k}", where=where, base=base)
        for k, v in parsed.items()
    }


def check_range(number: float, meta: Mapping[str, Any], *, key: str, where: str, raw: Any) -> None:
    """``number`` within the field's ``min``/``max`` (either may be None)."""
    low, high = meta.get("min"), meta.get("max")
    if low is not None and number < low:
        raise fail(where, key, raw, f"a value >= {low:g}" + (f" and <= {high:g}" if high else ""))
    if high is not None and number > high:
        raise fail(where, key, raw, f"a value <= {high:g}" + (f" and >= {low:g}" if low else ""))
