"""Read events from files: JSON lines (one object per line) or CSV (a header row)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamscore import jsonio
from streamscore.exceptions import StreamscoreError

FORMATS = ("jsonl", "csv")


class EventFileError(StreamscoreError):
    """An events file cannot be read; the message names the file and line."""


def detect_format(path: Path, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    raise EventFileError(
        f"{path}: cannot tell the format from the extension {suffix!r}; "
        f"use --format jsonl or --format csv"
    )


def count_events(path: Path, fmt: str) -> int:
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(lines - 1, 0) if fmt == "csv" else lines


def read_events(path: Path, fmt: str) -> Iterator[dict[str, Any]]:
    """Yield one dict per event. Invalid JSON lines are an error naming the line."""
    if not path.is_file():
        raise EventFileError(f"{path}: no such file")
    if fmt == "jsonl":
        yield from _read_jsonl(path)
    elif fmt == "csv":
        yield from _read_csv(path)
    else:
        raise EventFileError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def repeat_events(path: Path, fmt: str, passes: int | None) -> Iterator[dict[str, Any]]:
    """The file's events ``passes`` times over (None: without end), for steady traffic from a
    small file. Each pass re-reads the file, so memory does not grow with the passes."""
    done = 0
    while passes is None or done < passes:
        yield from read_events(path, fmt)
        done += 1


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = jsonio.loads(line)
            except jsonio.JSONDecodeError as exc:
                raise EventFileError(f"{path}:{number}: not valid JSON ({exc})") from exc
            if not isinstance(event, dict):
                raise EventFileError(f"{path}:{number}: expected a JSON object per line")
            yield event


def _read_csv(path: Path) -> Iterator[dict[str, Any]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        if not reader.fieldnames:
            raise EventFileError(f"{path}: empty CSV (a header row is required)")
        for row in reader:
            yield {key: _csv_value(value) for key, value in row.items() if key is not None}


def _csv_value(text: str | None) -> Any:
    """CSV cells are text: numbers become numbers, empty cells become null."""
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
