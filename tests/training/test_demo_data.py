"""The demo data: breast-cancer CSV for training, held-back labelled events for the stream."""

from __future__ import annotations

import pandas as pd

from streamscore import jsonio
from training import export_demo_data


def read_events(path):
    return [jsonio.loads(line) for line in path.read_bytes().splitlines()]


def test_demo_data_writes_csv_with_snake_case_features_id_and_target(make_config, tmp_path):
    cfg = make_config()
    data = export_demo_data(cfg)
    assert data.train_path == tmp_path / "data" / "train.csv"
    frame = pd.read_csv(data.train_path)
    assert frame.columns[0] == "id" and frame.columns[-1] == "target"
    assert "mean_radius" in frame.columns and "worst_fractal_dimension" in frame.columns
    assert frame.shape == (455, 32) and data.train_rows == 455
    assert frame["id"].str.fullmatch(r"bc-\d{4}").all()


def test_demo_data_holds_back_a_stratified_share_as_labelled_events(make_config):
    cfg = make_config()
    data = export_demo_data(cfg)
    events = read_events(data.events_path)
    assert len(events) == data.event_rows == 114
    first = events[0]
    keys = list(first)
    assert keys[0] == "id" and keys[-1] == "label"
    assert len(first) == 32 and isinstance(first["mean_radius"], float)
    share = sum(e["label"] for e in events) / len(events)
    assert abs(share - 357 / 569) < 0.01  # 357 of 569 rows are benign (label 1)
    train_ids = set(pd.read_csv(data.train_path)["id"])
    assert not train_ids & {e["id"] for e in events}
    assert len(train_ids) + len(events) == 569


def test_demo_data_is_reproducible_and_creates_folders(make_config, tmp_path):
    cfg = make_config(training={"data_path": "a/b/train.csv"}, demo={"events_path": "c/ev.jsonl"})
    first = export_demo_data(cfg)
    before = (first.train_path.read_bytes(), first.events_path.read_bytes())
    second = export_demo_data(cfg)
    assert (second.train_path.read_bytes(), second.events_path.read_bytes()) == before
    assert first.events_path == tmp_path / "c" / "ev.jsonl"
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["ev.jsonl"]  # no temp files


def test_demo_data_follows_the_configured_label_and_holdout(make_config):
    cfg = make_config(training={"label_column": "diagnosis"}, demo={"holdout_fraction": 0.5})
    data = export_demo_data(cfg)
    assert pd.read_csv(data.train_path).columns[-1] == "diagnosis"
    assert data.event_rows == 285 and data.train_rows == 284
