"""The whole training flow on real files into a real temporary store."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from model_store import ModelStore
from streamscore import jsonio
from streamscore.cli import main
from streamscore.exceptions import GateFailed, TrainingError
from training import export_demo_data, train
from training.lock import training_lock


@pytest.fixture
def cfg(config_factory):
    cfg = config_factory(
        model_store={"model_name": "breast-cancer"},
        training={"gate": {"min": {"roc_auc": 0.95}, "compare_metric": "roc_auc"}},
    )
    export_demo_data(cfg)
    return cfg


def test_demo_data_holds_back_labelled_events(cfg):
    header = cfg.training.data_path.read_text().splitlines()[0].split(",")
    assert header[0] == "id" and "mean_radius" in header and header[-1] == "target"
    events = [jsonio.loads(line) for line in cfg.demo.events_path.read_bytes().splitlines()]
    assert len(events) == 114 and {"id", "label", "mean_radius"} <= set(events[0])
    train_ids = {line.split(",")[0] for line in cfg.training.data_path.read_text().splitlines()[1:]}
    assert not train_ids & {e["id"] for e in events}


def test_train_registers_promotes_and_records_lineage(cfg):
    result = train(cfg, progress=False)
    assert result.promoted and result.verdict.passed
    store = ModelStore.from_config(cfg)
    manifest = store.manifest("production")
    assert manifest.version == 1 and manifest.task == "classification"
    assert manifest.classes == (0, 1)
    assert len(manifest.features) == 30 and manifest.features[0].name == "mean_radius"
    assert (
        manifest.data is not None and manifest.data.rows == 455 and len(manifest.data.sha256) == 64
    )
    assert manifest.metrics["roc_auc"] > 0.95
    assert manifest.config["training"]["label_column"] == "target"
    assert manifest.estimator.startswith("sklearn.linear_model.LogisticRegression(")
    assert store.aliases() == {"candidate": 1, "production": 1}


def test_trained_artifact_scores_held_out_events_without_warnings(cfg):
    train(cfg, progress=False)
    loaded = ModelStore.from_config(cfg).load("production")
    events = [jsonio.loads(line) for line in cfg.demo.events_path.read_bytes().splitlines()]
    X = np.array([[e[n] for n in loaded.manifest.feature_names] for e in events], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predicted = loaded.model.predict(X)
    accuracy = float(np.mean(predicted == np.array([e["label"] for e in events])))
    assert accuracy > 0.9


def test_second_run_compares_with_production_and_sets_parent(cfg):
    train(cfg, progress=False)
    second = train(cfg, progress=False)
    assert second.manifest.parent == 1
    assert any(c.name.startswith("vs production v1") and c.passed for c in second.verdict.checks)


def test_failing_gate_keeps_candidate_and_production(cfg, config_factory):
    train(cfg, progress=False)
    strict = config_factory(
        model_store={"model_name": "breast-cancer"},
        training={"gate": {"min": {"accuracy": 1.01}}},
    )
    with pytest.raises(GateFailed) as err:
        train(strict, progress=False)
    assert "v2 stays a candidate" in str(err.value) and "accuracy" in err.value.reasons[0]
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 2, "production": 1}


def test_no_promote_only_registers(cfg):
    result = train(cfg, promote=False, progress=False)
    assert not result.promoted
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 1}


def test_training_a_regressor_from_parquet(config_factory, tmp_path):
    import pandas as pd
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame
    path = tmp_path / "diabetes.parquet"
    data.to_parquet(path)
    cfg = config_factory(
        model_store={"model_name": "diabetes"},
        training={
            "data_path": str(path),
            "task": "regression",
            "estimator": "sklearn.linear_model.Ridge",
            "estimator_params": {"alpha": 1.0},
            "gate": {"min": {"r2": 0.3}, "max": {}, "compare_metric": "rmse", "tolerance": 1.0},
        },
    )
    result = train(cfg, progress=False)
    assert result.promoted and set(result.metrics) == {"rmse", "mae", "r2"}
    assert ModelStore.from_config(cfg).manifest(1).classes is None
    assert isinstance(pd.read_parquet(path), pd.DataFrame)


def test_missing_data_file_says_how_to_get_one(config_factory):
    cfg = config_factory(training={"data_path": "nope.csv"})
    with pytest.raises(TrainingError, match=r"does not exist.*demo-data"):
        train(cfg, progress=False)


def test_second_concurrent_run_is_refused(cfg):
    store = ModelStore.from_config(cfg)
    with (
        training_lock(store.folder / ".training.lock"),
        pytest.raises(TrainingError, match="another training run holds"),
    ):
        train(cfg, progress=False)


def test_cli_train_and_exit_codes(cfg, config_factory):
    runner = CliRunner()
    ok = runner.invoke(main, ["--config", str(cfg.source), "train"])
    assert ok.exit_code == 0, ok.output
    assert "promoted breast-cancer v1" in ok.output and "roc_auc" in ok.output
    strict = config_factory(
        model_store={"model_name": "breast-cancer"}, training={"gate": {"min": {"roc_auc": 1.1}}}
    )
    refused = runner.invoke(main, ["--config", str(strict.source), "train"])
    assert refused.exit_code == 3
    assert "gate failed" in refused.output and "stays a candidate" in refused.output
    only = runner.invoke(main, ["--config", str(cfg.source), "train", "--no-promote"])
    assert only.exit_code == 0 and "as a candidate" in only.output


def test_cli_bad_config_names_the_key(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[training]\ntest_size = 2\n")
    result = CliRunner().invoke(main, ["--config", str(path), "train"])
    assert result.exit_code == 2
    assert "[training] test_size = 2 is invalid" in result.output
