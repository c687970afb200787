"""Read a model fitted elsewhere: a joblib/pickle file, or an MLflow scikit-learn model folder.

An MLflow model folder (what ``mlflow.sklearn.save_model`` / ``log_model`` writes) holds an
``MLmodel`` YAML file::

    flavors:
      python_function: {loader_module: mlflow.sklearn, model_path: model.pkl, ...}
      sklearn:
        pickled_model: model.pkl          # or model.skops
        serialization_format: cloudpickle # pickle | cloudpickle | skops
        sklearn_version: 1.5.2
    signature:
      inputs: '[{"type": "double", "name": "age", "required": true}, ...]'
      outputs: '[{"type": "long", "required": true}]'

beside the model file (and ``conda.yaml``, ``requirements.txt``, ...). The ``sklearn`` flavor
names the model file and its format; the column-based signature becomes the feature schema.
mlflow itself is not needed: the file is read with pickle (cloudpickle writes pickles that
pickle loads) or skops.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import yaml

from model_store import FeatureSpec, file_sha256
from streamscore.exceptions import ModelStoreError, TrainingError

MLMODEL_FILE = "MLmodel"

#: MLflow column types -> (feature dtype, pandas dtype of the column).
MLFLOW_TYPES = {
    "double": ("float", "float64"),
    "float": ("float", "float32"),
    "long": ("int", "int64"),
    "integer": ("int", "int32"),
    "boolean": ("bool", "bool"),
    "string": ("string", "object"),
}


@dataclass(frozen=True)
class ModelSource:
    """A loaded model and where it came from; ``schema`` when the source carries one."""

    model: Any
    path: Path  # the file, or the MLflow folder
    sha256: str  # of the model file
    format: str  # joblib | mlflow
    schema: list[FeatureSpec] | None = None


def load_user_pickle(path: Path) -> Any:
    """Unpickle the data scientist's own file, once, in this process (they trust it).

    A ``.skops`` file is opened by the store's safe loader instead (trusted types only).
    Whatever it was, ``ModelStore.register`` writes it as skops: no worker unpickles it.
    """
    if path.suffix == ".skops":
        from model_store.artifact import load_user_file

        try:
            return load_user_file(path)
        except ModelStoreError as exc:
            raise TrainingError(str(exc)) from exc
    try:
        return joblib.load(path)
    except Exception as exc:  # unpickling raises whatever the pickled classes raise
        raise TrainingError(
            f"{path} could not be loaded with joblib/pickle ({type(exc).__name__}: {exc}); "
            f"save the fitted model with joblib.dump(model, path) in an environment with the "
            f"same scikit-learn, and import it where its own classes are importable"
        ) from exc


def read_source(path: Path) -> ModelSource:
    """The model at ``path``: an MLflow model folder, or a joblib/pickle file."""
    if not path.exists():
        raise TrainingError(
            f"{path} does not exist; pass the file written by joblib.dump(model, path) or an "
            f"MLflow model folder (the one holding the MLmodel file)"
        )
    if path.is_dir():
        return read_mlflow(path)
    return ModelSource(load_user_pickle(path), path, file_sha256(path), "joblib")


def read_mlflow(folder: Path) -> ModelSource:
    """An MLflow scikit-learn model folder: its sklearn flavor's model file and signature."""
    mlmodel = folder / MLMODEL_FILE
    if not mlmodel.is_file():
        raise TrainingError(
            f"{folder} is a folder without an {MLMODEL_FILE} file, so not an MLflow model; pass "
            f"the model folder itself (e.g. mlruns/<experiment>/<run>/artifacts/model) or a "
            f"joblib file"
        )
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TrainingError(f"{mlmodel}: not valid YAML ({exc})") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("flavors"), dict):
        raise TrainingError(f"{mlmodel}: no 'flavors' table; is this an MLflow model?")
    flavors = spec["flavors"]
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, dict):
        raise TrainingError(
            f"{mlmodel} has the flavors {', '.join(sorted(flavors))} but no 'sklearn' flavor; "
            f"streamscore serves scikit-learn models (log it with mlflow.sklearn.log_model)"
        )
    name = sklearn.get("pickled_model")
    if not isinstance(name, str) or Path(name).name != name:
        raise TrainingError(f"{mlmodel}: the sklearn flavor names no model file (pickled_model)")
    model_file = folder / name
    if not model_file.is_file():
        raise TrainingError(f"{mlmodel} names {name}, which is not in {folder}")
    serialization = str(sklearn.get("serialization_format") or "pickle")
    model = _load_mlflow_file(model_file, serialization)
    schema = signature_schema(spec.get("signature"), where=str(mlmodel))
    return ModelSource(model, folder, file_sha256(model_file), "mlflow", schema)


def _load_mlflow_file(path: Path, serialization: str) -> Any:
    if serialization in ("pickle", "cloudpickle"):
        try:
            with path.open("rb") as handle:
                return pickle.load(handle)  # noqa: S301 - the data scientist's own model file
        except Exception as exc:  # unpickling raises whatever the pickled classes raise
            hint = " (install cloudpickle)" if "cloudpickle" in str(exc) else ""
            raise TrainingError(
                f"{path} ({serialization}) could not be unpickled{hint}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if serialization == "skops":
        try:
            import skops.io as sio
        except ImportError as exc:
            raise TrainingError(
                f"{path} is in the skops format: install skops (pip install skops) to import it"
            ) from exc
        try:
            untrusted = sio.get_untrusted_types(file=path)
            return sio.load(path, trusted=untrusted)  # the data scientist trusts their own file
        except Exception as exc:  # skops raises many types for unreadable files
            raise TrainingError(
                f"{path} (skops) could not be loaded: {type(exc).__name__}: {exc}"
            ) from exc
    raise TrainingError(
        f"{path}: unknown MLflow serialization_format {serialization!r}; expected pickle, "
        f"cloudpickle or skops"
    )


def signature_schema(signature: Any, *, where: str) -> list[FeatureSpec] | None:
    """Feature specs from an MLflow signature's column-based inputs; None without one."""
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    raw = signature["inputs"]
    try:
        columns = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise TrainingError(f"{where}: signature inputs are not valid JSON ({exc})") from exc
    if not isinstance(columns, list):
        raise TrainingError(f"{where}: signature inputs must be a list of columns")
    specs: list[FeatureSpec] = []
    for i, column in enumerate(columns):
        if not isinstance(column, dict):
            raise TrainingError(f"{where}: signature input {i} is not a column spec")
        kind = str(column.get("type", ""))
        name = column.get("name")
        if kind == "tensor" or name is None:
            raise TrainingError(
                f"{where}: the signature describes a tensor / unnamed input, not named columns; "
                f"log the model with a DataFrame input example, or import it with --data or "
                f"--schema"
            )
        if kind not in MLFLOW_TYPES:
            raise TrainingError(
                f"{where}: signature column {name!r} has type {kind!r}, which streamscore "
                f"cannot take from JSON events; supported: {', '.join(MLFLOW_TYPES)}"
            )
        dtype, frame_dtype = MLFLOW_TYPES[kind]
        required = bool(column.get("required", True))
        specs.append(FeatureSpec(str(name), dtype, required, None, (), frame_dtype))
    return specs
