"""Importing a model fitted elsewhere: schema, evaluation, gate, provenance, and every refusal."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from model_store import ModelStore, file_sha256
from streamscore.exceptions import TrainingError
from tests.notebook_models import (
    FEATURES,
    LABEL,
    REGIONS,
    churn_data,
    churn_pipeline,
    fitted_churn_model,
)
from training import ImportRefused, import_model, register_fitted

GATE = {"min": {"roc_auc": 0.7}, "max": {}, "compare_metric": "roc_auc", "tolerance": 0.05}
STRICT = {"min": {"roc_auc": 1.1}, "max": {}, "compare_metric": ""}


@pytest.fixture
def cfg(make_config):
    return make_config(
        model_store={"model_name": "churn"}, training={"label_column": LABEL, "gate": GATE}
    )


@pytest.fixture
def notebook(tmp_path):
    """A fitted notebook pipeline saved with joblib.dump, and rows it did not learn from."""
    frame = churn_data(400)
    train, test = frame.iloc[:300], frame.iloc[300:]
    model = fitted_churn_model(train)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    data = tmp_path / "test.csv"
    test.to_csv(data, index=False)
    return model, path, data, test


def test_import_with_data_derives_the_schema_evaluates_gates_and_records_the_source(cfg, notebook):
    _, path, data, test = notebook
    result = import_model(cfg, path, data=data)
    m = result.manifest
    assert [(f.name, f.dtype) for f in m.features] == [
        ("age", "int"),
        ("income", "float"),
        ("region", "category"),
    ]
    assert m.features[2].categories == REGIONS  # from the model's OneHotEncoder
    assert m.features[0].frame_dtype == "int64" and m.features[1].frame_dtype == "float64"
    assert m.imported is not None and m.imported.format == "joblib"
    assert m.imported.path == str(path) and m.imported.sha256 == file_sha256(path)
    assert m.data is not None and m.data.sha256 == file_sha256(data) and m.data.rows == 100
    assert list(result.metrics) == ["accuracy", "f1", "roc_auc", "log_loss"]
    assert result.evaluated_rows == len(test)
    assert m.gate is not None and m.gate["passed"] is True
    assert m.task == "classification" and m.classes == (0, 1)
    assert not result.promoted
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 1}


def test_import_promote_moves_production_when_the_gate_passes(cfg, notebook):
    _, path, data, _ = notebook
    result = import_model(cfg, path, data=data, promote=True)
    assert result.promoted
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 1, "production": 1}


def test_import_gate_failure_keeps_a_candidate_and_says_why(make_config, notebook):
    strict = make_config(
        model_store={"model_name": "churn"}, training={"label_column": LABEL, "gate": STRICT}
    )
    _, path, data, _ = notebook
    with pytest.raises(
        ImportRefused,
        match=r"churn v1 stays a candidate \(no production model "
        r"yet\): roc_auc 0\.\d+ < 1\.1",
    ) as refused:
        import_model(strict, path, data=data, promote=True)
    assert refused.value.result.manifest.gate["passed"] is False
    assert ModelStore.from_config(strict).aliases() == {"candidate": 1}


def test_import_no_gate_registers_without_a_verdict(cfg, notebook):
    _, path, data, _ = notebook
    result = import_model(cfg, path, data=data, gate=False)
    assert result.verdict is None and result.manifest.gate is None
    assert result.metrics["roc_auc"] > 0.7


def test_import_test_size_evaluates_a_held_out_share(cfg, notebook):
    _, path, data, _ = notebook
    result = import_model(cfg, path, data=data, test_size=0.25)
    assert result.evaluated_rows == 25


def test_import_without_data_takes_the_schema_file_in_model_order(cfg, notebook, tmp_path):
    _, path, _, _ = notebook
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps(
            [
                {"name": "region", "dtype": "string"},
                {"name": "income", "dtype": "float"},
                {"name": "age", "dtype": "int", "required": False, "default": 40},
            ]
        )
    )
    result = import_model(cfg, path, schema_file=schema, gate=False)
    features = result.manifest.features
    assert [f.name for f in features] == FEATURES  # feature_names_in_ order
    assert features[2].dtype == "category" and features[2].categories == REGIONS
    assert features[0].required is False and features[0].default == 40
    assert result.metrics == {}


def test_import_without_data_cannot_pass_a_gate_with_checks(cfg, notebook, tmp_path):
    _, path, _, _ = notebook
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"features": [{"name": n, "dtype": "float"} for n in FEATURES]}))
    with pytest.raises(ImportRefused, match="no --data to evaluate the model on"):
        import_model(cfg, path, schema_file=schema, promote=True)


def test_register_fitted_from_a_dataframe_returns_the_manifest(cfg):
    frame = churn_data(400)
    model = fitted_churn_model(frame.iloc[:300])
    test = frame.iloc[300:]
    manifest = register_fitted(model, test[FEATURES], test[LABEL], config=cfg, promote=True)
    assert manifest.label == "churn v1"
    assert [f.name for f in manifest.features] == FEATURES
    assert manifest.gate is not None and manifest.gate["passed"]
    assert manifest.metrics["roc_auc"] > 0.7
    assert manifest.imported is not None and manifest.imported.format == "python"
    assert ModelStore.from_config(cfg).aliases()["production"] == 1


def test_register_fitted_with_arrays_for_a_model_fitted_on_arrays(cfg):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X[:200], y[:200])
    manifest = register_fitted(model, X[200:], y[200:], config=cfg, name="arrays")
    assert manifest.name == "arrays"
    assert [(f.name, f.dtype) for f in manifest.features] == [
        ("x0", "float"),
        ("x1", "float"),
        ("x2", "float"),
    ]


# --------------------------------------------------------------------------- refusals


def test_import_refuses_without_data_or_schema_and_says_what_to_pass(cfg, notebook):
    _, path, _, _ = notebook
    with pytest.raises(TrainingError) as caught:
        import_model(cfg, path)
    message = str(caught.value)
    assert message.startswith(
        f"{path}: cannot tell the model's feature schema (it was fitted on the columns age, "
        f"income, region): pass --data FILE (CSV or Parquet with the features and the label "
        f"column, also used to evaluate and gate the model; --label NAME) or --schema FILE "
        f'(a JSON list of features: [{{"name": "age", "dtype": "float"}}'
    )


def test_import_refuses_data_without_a_fitted_column(cfg, notebook, tmp_path):
    _, path, _, test = notebook
    data = tmp_path / "partial.csv"
    test.drop(columns=["region"]).to_csv(data, index=False)
    with pytest.raises(TrainingError, match=r"was fitted on columns the data lacks: 'region'"):
        import_model(cfg, path, data=data)


def test_import_refuses_data_without_the_label(cfg, notebook):
    _, path, data, _ = notebook
    with pytest.raises(TrainingError, match=r"label column 'target' is not in .*pass --label NAME"):
        import_model(cfg, path, data=data, label="target")


def test_import_refuses_a_schema_that_does_not_match_the_fitted_columns(cfg, notebook, tmp_path):
    _, path, _, _ = notebook
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps([{"name": "age", "dtype": "int"}, {"name": "zip", "dtype": "int"}])
    )
    with pytest.raises(TrainingError) as caught:
        import_model(cfg, path, schema_file=schema, gate=False)
    assert str(caught.value).endswith(
        "(feature_names_in_): it lacks 'income', 'region' and has 'zip' the model was not fitted on"
    )


def test_import_refuses_an_unfitted_pipeline(cfg, tmp_path, notebook):
    _, _, data, _ = notebook
    path = tmp_path / "unfitted.joblib"
    joblib.dump(churn_pipeline(), path)
    with pytest.raises(TrainingError, match=r"holds an unfitted Pipeline; fit it before saving it"):
        import_model(cfg, path, data=data)


def test_import_refuses_what_is_not_an_estimator(cfg, tmp_path, notebook):
    _, _, data, _ = notebook
    path = tmp_path / "dict.joblib"
    joblib.dump({"weights": [1, 2]}, path)
    with pytest.raises(TrainingError, match=r"holds a dict, not a scikit-learn estimator"):
        import_model(cfg, path, data=data)


def test_import_refuses_a_file_that_is_not_a_pickle(cfg, tmp_path):
    path = tmp_path / "model.joblib"
    path.write_text("not a pickle")
    with pytest.raises(TrainingError, match=r"could not be loaded with joblib/pickle"):
        import_model(cfg, path)


def test_import_refuses_a_missing_path(cfg, tmp_path):
    with pytest.raises(TrainingError, match=r"does not exist; pass the file written by joblib"):
        import_model(cfg, tmp_path / "nope.joblib")


def test_import_refuses_promote_without_the_gate(cfg, notebook):
    _, path, data, _ = notebook
    with pytest.raises(
        TrainingError,
        match=r"--no-gate registers without judging the model, "
        r"so it cannot also --promote",
    ):
        import_model(cfg, path, data=data, gate=False, promote=True)


def test_import_refuses_a_regressor_judged_by_a_classification_gate(cfg, tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 2))
    path = tmp_path / "regressor.joblib"
    joblib.dump(LinearRegression().fit(X, X[:, 0] * 2.0), path)
    with pytest.raises(TrainingError) as caught:
        import_model(cfg, path)
    assert "the model is a regressor but [training.gate] in " in str(caught.value)
    assert str(caught.value).endswith(
        "checks roc_auc, which a regression model does not have; set [training] task = "
        "'regression' and gate on rmse, mae, r2, or pass --no-gate to register it without judging"
    )


def test_import_refuses_an_array_model_given_other_columns(cfg, tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 2))
    y = (X[:, 0] > 0).astype(int)
    path = tmp_path / "arrays.joblib"
    joblib.dump(LogisticRegression().fit(X, y), path)
    data = tmp_path / "data.csv"
    frame = churn_data(50)[["age", "income", "region", LABEL]]
    frame.to_csv(data, index=False)
    with pytest.raises(
        TrainingError,
        match=r"fitted on a matrix of 2 columns without names, but "
        r"the data has 3 feature columns besides the label and \[training\] id_column",
    ):
        import_model(cfg, path, data=data)


def test_import_of_an_array_model_leaves_the_id_column_out(cfg, tmp_path):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(120, 2)), columns=["a", "b"])
    frame[LABEL] = (frame.a > 0).astype(int)
    frame.insert(0, "id", [f"r-{i}" for i in range(len(frame))])
    path = tmp_path / "arrays.joblib"
    joblib.dump(LogisticRegression().fit(frame[["a", "b"]].to_numpy(), frame[LABEL]), path)
    frame.to_csv(tmp_path / "data.csv", index=False)
    result = import_model(cfg, path, data=tmp_path / "data.csv")
    assert [f.name for f in result.manifest.features] == ["a", "b"]
    assert result.metrics["accuracy"] > 0.9
