"""The demo data set: scikit-learn's breast-cancer data (it ships with the library: no download).

Most rows become the training CSV at ``[training] data_path``; a stratified
``[demo] holdout_fraction`` of them (fixed seed) is held back as JSON-lines events at
``[demo] events_path``, each with its known label under ``label`` so the demo can measure
accuracy on the stream (the worker ignores fields that are not features). Rows carry ids
``bc-0001`` ... under ``[training] id_column`` in the CSV and ``[worker] id_field`` in events.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from streamscore import jsonio
from streamscore.config import Config

#: The hold-back split never changes with [training] seed, so events stay comparable.
DEMO_SEED = 42
EVENT_LABEL_FIELD = "label"
ID_COLUMN = "__demo_id__"  # renamed to [training] id_column in the CSV, [worker] id_field in events


@dataclass(frozen=True)
class DemoData:
    train_path: Path
    events_path: Path
    train_rows: int
    event_rows: int


def snake_case(name: str) -> str:
    """``"mean radius"`` -> ``"mean_radius"``."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def export_demo_data(cfg: Config) -> DemoData:
    """Write the training CSV and the held-back events; create their folders."""
    t = cfg.training
    frame = load_breast_cancer(as_frame=True).frame.rename(columns=snake_case)
    frame = frame.rename(columns={"target": t.label_column})
    ids = [f"bc-{i + 1:04d}" for i in range(len(frame))]
    frame.insert(0, ID_COLUMN, ids)
    train, events = train_test_split(
        frame,
        test_size=cfg.demo.holdout_fraction,
        random_state=DEMO_SEED,
        stratify=frame[t.label_column],
    )
    train = train.sort_index()
    events = events.sort_index()
    t.data_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.demo.events_path.parent.mkdir(parents=True, exist_ok=True)
    csv = (
        train.rename(columns={ID_COLUMN: t.id_column})
        if t.id_column
        else train.drop(columns=ID_COLUMN)
    )
    _replace(t.data_path, csv.to_csv(index=False).encode())
    features = [c for c in frame.columns if c not in (t.label_column, ID_COLUMN)]
    lines = []
    for row in events.to_dict(orient="records"):
        event: dict[str, object] = {cfg.worker.id_field: row[ID_COLUMN]}
        event.update({name: float(row[name]) for name in features})
        event[EVENT_LABEL_FIELD] = int(row[t.label_column])
        lines.append(jsonio.dumps(event))
    _replace(cfg.demo.events_path, b"\n".join(lines) + b"\n")
    return DemoData(t.data_path, cfg.demo.events_path, len(train), len(events))


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path``, then rename it into place: readers never see half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
