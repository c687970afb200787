"""The demo data set: scikit-learn's breast-cancer data (ships with the library, no download).

Most rows become the training CSV; a stratified share is held back as JSON-lines events, each
with its known label under ``label`` so the demo can measure accuracy on the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from streamscore import jsonio
from streamscore.config import Config


@dataclass(frozen=True)
class DemoData:
    train_path: Path
    events_path: Path
    train_rows: int
    event_rows: int


def snake(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def export_demo_data(cfg: Config) -> DemoData:
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=snake)
    frame.insert(0, cfg.training.id_column, [f"bc-{i:04d}" for i in range(len(frame))])
    label = cfg.training.label_column
    if label != "target":
        frame = frame.rename(columns={"target": label})
    train, events = train_test_split(
        frame,
        test_size=cfg.demo.holdout_fraction,
        random_state=cfg.training.seed,
        stratify=frame[label],
    )
    train_path = cfg.training.data_path
    events_path = cfg.demo.events_path
    train_path.parent.mkdir(parents=True, exist_ok=True)
    events_path.parent.mkdir(parents=True, exist_ok=True)
    train.sort_index().to_csv(train_path, index=False)
    features = [c for c in frame.columns if c not in (label, cfg.training.id_column)]
    lines = []
    for _, row in events.sort_index().iterrows():
        event = {cfg.training.id_column: row[cfg.training.id_column]}
        event.update({name: float(row[name]) for name in features})
        event["label"] = int(np.int64(row[label]))
        lines.append(jsonio.dumps(event))
    events_path.write_bytes(b"\n".join(lines) + b"\n")
    return DemoData(train_path, events_path, len(train), len(events))
