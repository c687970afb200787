"""Reading models fitted elsewhere: MLflow scikit-learn folders (without mlflow), and refusals."""

from __future__ import annotations

import pytest

from model_store import file_sha256
from streamscore.exceptions import TrainingError
from tests.notebook_models import (
    FEATURES,
    REGIONS,
    churn_data,
    fitted_churn_model,
    write_mlflow_model,
)
from training import import_model
from training.sources import read_source


@pytest.fixture
def mlflow_folder(tmp_path):
    frame = churn_data(300)
    model = fitted_churn_model(frame)
    folder = tmp_path / "mlruns" / "1" / "run" / "artifacts" / "model"
    write_mlflow_model(folder, model, frame)
    return folder, model, frame


def test_read_mlflow_folder_loads_the_sklearn_flavor_and_the_signature(mlflow_folder):
    folder, model, frame = mlflow_folder
    source = read_source(folder)
    assert source.format == "mlflow" and source.path == folder
    assert source.sha256 == file_sha256(folder / "model.pkl")
    assert [(f.name, f.dtype, f.frame_dtype) for f in source.schema] == [
        ("age", "int", "int64"),
        ("income", "float", "float64"),
        ("region", "string", "object"),
    ]
    assert source.model.predict(frame[FEATURES]).tolist() == model.predict(frame[FEATURES]).tolist()


def test_import_mlflow_folder_takes_its_schema_from_the_signature(make_config, mlflow_folder):
    cfg = make_config(model_store={"model_name": "churn"})
    folder, _, _ = mlflow_folder
    result = import_model(cfg, folder, gate=False)
    features = result.manifest.features
    assert [f.name for f in features] == FEATURES
    assert features[2].dtype == "category" and features[2].categories == REGIONS
    assert result.manifest.imported.format == "mlflow"


def test_mlflow_folder_without_a_sklearn_flavor_is_refused(mlflow_folder):
    folder, _, _ = mlflow_folder
    mlmodel = folder / "MLmodel"
    text = mlmodel.read_text().replace("  sklearn:\n", "  xgboost:\n")
    mlmodel.write_text(text)
    with pytest.raises(
        TrainingError,
        match=r"has the flavors python_function, xgboost but no "
        r"'sklearn' flavor; streamscore serves scikit-learn models",
    ):
        read_source(folder)


def test_mlflow_folder_with_a_tensor_signature_is_refused(mlflow_folder):
    folder, _, _ = mlflow_folder
    mlmodel = folder / "MLmodel"
    lines = mlmodel.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  inputs:"))
    lines[start : start + 2] = [
        """  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", """
        """"shape": [-1, 3]}}]'"""
    ]
    mlmodel.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrainingError, match=r"the signature describes a tensor / unnamed input"):
        read_source(folder)


def test_mlflow_folder_missing_its_model_file_is_refused(mlflow_folder):
    folder, _, _ = mlflow_folder
    (folder / "model.pkl").unlink()
    with pytest.raises(TrainingError, match=r"MLmodel names model.pkl, which is not in "):
        read_source(folder)


def test_mlflow_folder_with_an_unknown_serialization_format_is_refused(mlflow_folder):
    folder, _, _ = mlflow_folder
    mlmodel = folder / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("format: cloudpickle", "format: onnx"))
    with pytest.raises(TrainingError, match=r"unknown MLflow serialization_format 'onnx'"):
        read_source(folder)


def test_a_folder_without_mlmodel_is_refused(tmp_path):
    with pytest.raises(
        TrainingError, match=r"is a folder without an MLmodel file, so not an MLflow"
    ):
        read_source(tmp_path)
