"""Bring your own model, end to end on the real broker with real worker processes.

A data scientist's fitted pipeline (a ColumnTransformer selecting columns by name, one-hot on
text, scaled numbers) goes from ``joblib.dump`` to predictions on the output topic with two
commands, ``streamscore models import ... --promote`` and ``streamscore worker``; the same
through the notebook API, from an MLflow folder, and from a ``[training] pipeline`` factory.
Every worker here runs as ``python -m worker run`` with the default ``import_pandas = false``:
a model fitted on a DataFrame loads pandas in its worker by itself.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from model_store import ModelStore
from streamscore.wire import H_ERROR_MESSAGE, H_STAGE
from tests.conftest import PythonProcesses, worker_run
from tests.kafka_helpers import produce, read
from tests.notebook_models import (
    FEATURES,
    LABEL,
    churn_data,
    events,
    fitted_churn_model,
    write_mlflow_model,
)
from training import register_fitted

pytestmark = [pytest.mark.broker, pytest.mark.slow]

GATE = {"min": {"roc_auc": 0.7}, "max": {}, "compare_metric": "roc_auc", "tolerance": 0.05}


@pytest.fixture
def spawn(python_processes: PythonProcesses) -> Callable[..., subprocess.Popen[bytes]]:
    """Start ``python -m worker run`` processes; SIGTERM (then kill) them at the end."""

    def start(cfg: Any) -> subprocess.Popen[bytes]:
        return python_processes.start(cfg, *worker_run(len(python_processes.started)))

    return start


@pytest.fixture
def churn_cfg(config_factory):
    def make(**worker: Any) -> Any:
        return config_factory(
            model_store={"model_name": "churn"},
            training={"label_column": LABEL, "gate": GATE},
            worker=worker,
        )

    return make


@pytest.fixture
def split_rows() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = churn_data(400)
    return frame.iloc[:300].reset_index(drop=True), frame.iloc[300:].reset_index(drop=True)


def streamscore(cfg: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamscore", "--config", str(cfg.source), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def scored(cfg: Any, count: int) -> dict[str, dict[str, Any]]:
    outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=count, timeout_s=90)
    return {r.value["id"]: r.value for r in outputs}


def assert_same_as_model(outputs: dict[str, dict[str, Any]], model: Any, rows: pd.DataFrame):
    """Every row scored, with exactly the predictions and probabilities of ``model``."""
    assert set(outputs) == set(rows["id"])
    expected = dict(zip(rows["id"], model.predict(rows[FEATURES]).tolist(), strict=True))
    assert {i: o["prediction"] for i, o in outputs.items()} == expected
    proba = model.predict_proba(rows[FEATURES])
    got = np.array([[outputs[i]["probabilities"][str(c)] for c in model.classes_] for i in rows.id])
    np.testing.assert_allclose(got, proba, rtol=1e-12)


def test_imported_notebook_pipeline_is_scored_by_a_worker_like_model_predict(
    churn_cfg, split_rows, tmp_path, spawn
):
    cfg = churn_cfg()
    train, test = split_rows
    model = fitted_churn_model(train)
    joblib.dump(model, tmp_path / "model.joblib")
    test.to_csv(tmp_path / "test.csv", index=False)

    model_file, data = tmp_path / "model.joblib", tmp_path / "test.csv"
    done = streamscore(cfg, "models", "import", str(model_file), "--data", str(data), "--promote")
    assert done.returncode == 0, done.stderr
    assert "promoted churn v1 to 'production'" in done.stdout
    assert "quality gate passed" in done.stdout

    spawn(cfg)
    produce(cfg.kafka, events(test))
    assert_same_as_model(scored(cfg, len(test)), model, test)
    log = (cfg.worker.log_dir / "worker-0.log").read_text()
    assert "not loading ['pandas', 'pyarrow'] in this process" in log
    assert "pandas loaded in this process: churn v1 was fitted on a DataFrame" in log


def test_register_fitted_in_a_notebook_is_scored_by_a_worker(churn_cfg, split_rows, spawn):
    cfg = churn_cfg()
    train, test = split_rows
    model = fitted_churn_model(train)
    manifest = register_fitted(model, test[FEATURES], test[LABEL], config=cfg, promote=True)
    assert manifest.gate is not None and manifest.gate["passed"]

    spawn(cfg)
    produce(cfg.kafka, events(test))
    assert_same_as_model(scored(cfg, len(test)), model, test)


def test_mlflow_model_folder_is_imported_and_scored_by_a_worker(
    churn_cfg, split_rows, tmp_path, spawn
):
    cfg = churn_cfg()
    train, test = split_rows
    model = fitted_churn_model(train)
    folder = tmp_path / "mlruns" / "7" / "0a1b2c" / "artifacts" / "model"
    write_mlflow_model(folder, model, train)
    test.to_csv(tmp_path / "test.csv", index=False)

    done = streamscore(
        cfg, "models", "import", str(folder), "--data", str(tmp_path / "test.csv"), "--promote"
    )
    assert done.returncode == 0, done.stderr
    assert "imported from mlflow" in done.stdout

    spawn(cfg)
    produce(cfg.kafka, events(test))
    assert_same_as_model(scored(cfg, len(test)), model, test)


@pytest.mark.parametrize("policy", ["reject", "score"])
def test_unknown_categories_on_a_running_worker_follow_the_policy(
    churn_cfg, split_rows, spawn, policy
):
    cfg = churn_cfg(unknown_category=policy)
    train, test = split_rows
    model = fitted_churn_model(train)
    register_fitted(model, test[FEATURES], test[LABEL], config=cfg, promote=True)
    batch = events(test.head(5))
    batch[2] = {**batch[2], "region": "east"}

    spawn(cfg)
    produce(cfg.kafka, batch)
    if policy == "reject":
        outputs = scored(cfg, 4)
        [dead] = read(cfg.kafka, cfg.kafka.dead_letter_topic, expected=1, timeout_s=30)
        assert dead.value["id"] == batch[2]["id"]
        assert dead.headers[H_STAGE] == "schema"
        assert dead.headers[H_ERROR_MESSAGE] == (
            "feature \"region\" has the unknown category 'east' (model churn v1 knows 3: "
            "'north', 'south', 'west'); set [worker] unknown_category = \"score\" to let the "
            "model score it anyway"
        )
        assert set(outputs) == {e["id"] for e in batch} - {batch[2]["id"]}
    else:
        outputs = scored(cfg, 5)
        assert set(outputs) == {e["id"] for e in batch}
        unseen = pd.DataFrame([batch[2]])[FEATURES]
        assert outputs[batch[2]["id"]]["prediction"] == model.predict(unseen).tolist()[0]


HOUSE_FEATURES = """
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def make_pipeline(schema, config):
    numbers = [f.name for f in schema if f.dtype in ("float", "int")]
    text = [f.name for f in schema if f.dtype == "string"]
    preprocess = ColumnTransformer(
        [("numbers", StandardScaler(), numbers), ("words", TfidfVectorizer(), text[0])]
    )
    return Pipeline([("preprocess", preprocess), ("model", Ridge(**config.estimator_params))])
"""


def test_regression_with_a_text_column_trained_through_a_pipeline_factory(
    config_factory, tmp_path, spawn
):
    rng = np.random.default_rng(4)
    n = 300
    words = np.array(["sunny garden", "dark basement", "new kitchen", "busy road", "sea view"])
    value = np.array([30.0, -20.0, 25.0, -15.0, 60.0])
    pick = rng.integers(0, len(words), n)
    frame = pd.DataFrame(
        {
            "id": [f"h-{i}" for i in range(n)],
            "sqft": rng.normal(100, 20, n).round(1),
            "rooms": rng.integers(1, 6, n),
            "description": words[pick],
        }
    )
    frame["price"] = 2.0 * frame.sqft + 10 * frame.rooms + value[pick] + rng.normal(0, 2, n)
    (tmp_path / "house_features.py").write_text(textwrap.dedent(HOUSE_FEATURES))
    cfg = config_factory(
        model_store={"model_name": "houses"},
        training={
            "data_path": "houses.csv",
            "label_column": "price",
            "task": "regression",
            "pipeline": "house_features:make_pipeline",
            "estimator_params": {"alpha": 0.1},
            "gate": {"min": {"r2": 0.9}, "max": {}, "compare_metric": "rmse", "tolerance": 1.0},
        },
    )
    frame.to_csv(cfg.training.data_path, index=False)

    done = streamscore(cfg, "train")
    assert done.returncode == 0, done.stderr
    manifest = ModelStore.from_config(cfg).manifest("production")
    assert (
        manifest.estimator == "house_features:make_pipeline -> Pipeline(ColumnTransformer, Ridge)"
    )
    assert [(f.name, f.dtype) for f in manifest.features] == [
        ("sqft", "float"),
        ("rooms", "int"),
        ("description", "string"),
    ]
    model = ModelStore.from_config(cfg).load("production").model

    spawn(cfg)
    rows = frame.head(40)
    produce(
        cfg.kafka,
        [
            {"id": r.id, "sqft": r.sqft, "rooms": int(r.rooms), "description": r.description}
            for r in rows.itertuples()
        ],
    )
    outputs = scored(cfg, len(rows))
    expected = model.predict(rows[["sqft", "rooms", "description"]])
    got = [outputs[i]["prediction"] for i in rows.id]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_post_predict_scores_a_dataframe_model_like_the_stream(config_factory, split_rows):
    import threading

    import httpx

    from tests.kafka_helpers import wait_until
    from worker.runner import WorkerProcess

    cfg = config_factory(
        model_store={"model_name": "churn"},
        training={"label_column": LABEL, "gate": GATE},
        worker={"unknown_category": "reject"},
        http={"enabled": True, "port": 0},
    )
    train, test = split_rows
    model = fitted_churn_model(train)
    register_fitted(model, test[FEATURES], test[LABEL], config=cfg, promote=True)
    process = WorkerProcess(cfg)
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: process.http is not None, 10, "the HTTP side")
        wait_until(lambda: process.worker.reloader.latest is not None, 20, "the model")
        assert process.http is not None
        base = f"http://127.0.0.1:{process.http.port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            batch = client.post("/predict", json=events(test.head(20)))
            assert batch.status_code == 200
            got = [r["prediction"] for r in batch.json()["results"]]
            assert got == model.predict(test.head(20)[FEATURES]).tolist()
            unknown = client.post("/predict", json={**events(test.head(1))[0], "region": "east"})
            assert unknown.status_code == 422
            assert unknown.json()["stage"] == "schema"
            assert "unknown category 'east'" in unknown.json()["error"]
    finally:
        process.stop()
        thread.join(timeout=30)
