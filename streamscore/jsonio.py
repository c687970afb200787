"""The one place JSON is encoded and decoded: bytes in, bytes out, orjson options set once."""

from __future__ import annotations

from typing import Any

import orjson

_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

JSONDecodeError = orjson.JSONDecodeError


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; raises :data:`JSONDecodeError` (a ``ValueError``) on bad input."""
    return orjson.loads(data)


def dumps(obj: Any) -> bytes:
    """Serialise to compact UTF-8 JSON bytes; numpy scalars and arrays are accepted."""
    return orjson.dumps(obj, option=_DUMP_OPTIONS)


def fragment(data: bytes) -> Any:
    """Already-encoded JSON to embed as it is in what :func:`dumps` writes (no re-encoding)."""
    return orjson.Fragment(data)


def dumps_pretty(obj: Any) -> bytes:
    """Indented, key-sorted JSON for files people read (manifests, pointers)."""
    return orjson.dumps(obj, option=_DUMP_OPTIONS | orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
