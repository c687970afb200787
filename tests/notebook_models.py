"""Models the way a data scientist builds them in a notebook, for the bring-your-own-model tests.

``churn_data()`` is a small customer table (numbers, an integer, a text column, a label);
``churn_pipeline()`` a ColumnTransformer selecting columns *by name* (scaled numbers, one-hot
text) before a RandomForest, fitted on a DataFrame, so it has ``feature_names_in_``.
Plain functions (not fixtures): ``from tests.notebook_models import ...``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

FEATURES = ["age", "income", "region"]
LABEL = "churned"
REGIONS = ("north", "south", "west")


def churn_data(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """``id, age (int), income (float), region (text), churned (0/1)``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": [f"c-{i}" for i in range(n)],
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50, 10, n).round(2),
            "region": rng.choice(REGIONS, n),
        }
    )
    churned = ((frame.region == "south") & (frame.income < 52)) | (frame.age > 70)
    flip = rng.random(n) < 0.05  # some noise, so metrics are not all 1.0
    frame[LABEL] = (churned ^ flip).astype(int)
    return frame


def churn_pipeline(*, handle_unknown: str = "ignore") -> Pipeline:
    """The notebook's pipeline, unfitted: columns selected by name."""
    numbers = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    text = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown=handle_unknown)),
        ]
    )
    preprocess = ColumnTransformer([("num", numbers, ["age", "income"]), ("cat", text, ["region"])])
    forest = RandomForestClassifier(n_estimators=30, random_state=0)
    return Pipeline([("preprocess", preprocess), ("model", forest)])


def fitted_churn_model(frame: pd.DataFrame, **kwargs: Any) -> Pipeline:
    model = churn_pipeline(**kwargs)
    model.fit(frame[FEATURES], frame[LABEL])
    return model


def events(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as the JSON events a producer would send (id and features, no label)."""
    out = []
    for row in frame.to_dict(orient="records"):
        out.append(
            {
                "id": row["id"],
                "age": int(row["age"]),
                "income": float(row["income"]),
                "region": str(row["region"]),
            }
        )
    return out


#: An ``MLmodel`` file as ``mlflow.sklearn.save_model`` (MLflow 2.x) writes it: YAML with sorted
#: keys, the signature's inputs and outputs as JSON strings, the pyfunc and sklearn flavors.
MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: {sklearn_version}
mlflow_version: 2.17.2
model_size_bytes: {size}
model_uuid: 3c8d2f0e4b5a4e7f9d1c2b3a4f5e6d7c
run_id: 9a8b7c6d5e4f40312a1b2c3d4e5f6a7b
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  serving_input_path: serving_input_example.json
  type: dataframe
signature:
  inputs: '[{{"type": "long", "name": "age", "required": true}}, {{"type": "double", "name":
    "income", "required": true}}, {{"type": "string", "name": "region", "required": true}}]'
  outputs: '[{{"type": "long", "required": true}}]'
  params: null
utc_time_created: '2026-11-30 10:00:00.123456'
"""


def write_mlflow_model(folder: Any, model: Any, sample: pd.DataFrame) -> None:
    """The folder ``mlflow.sklearn.save_model(model, folder, signature=..., input_example=...)``
    writes, file for file: MLmodel, model.pkl (cloudpickle), conda.yaml, python_env.yaml,
    requirements.txt, input_example.json, serving_input_example.json."""
    import json
    from pathlib import Path

    import cloudpickle
    import sklearn

    folder = Path(folder)
    folder.mkdir(parents=True)
    with (folder / "model.pkl").open("wb") as handle:
        cloudpickle.dump(model, handle)
    size = (folder / "model.pkl").stat().st_size
    (folder / "MLmodel").write_text(
        MLMODEL.format(sklearn_version=sklearn.__version__, size=size), encoding="utf-8"
    )
    requirements = [f"mlflow=={'2.17.2'}", f"cloudpickle=={cloudpickle.__version__}"]
    requirements.append(f"scikit-learn=={sklearn.__version__}")
    (folder / "conda.yaml").write_text(
        "channels:\n- conda-forge\ndependencies:\n- python=3.11.7\n- pip<=24.2\n- pip:\n"
        + "".join(f"  - {r}\n" for r in requirements)
        + "name: mlflow-env\n",
        encoding="utf-8",
    )
    (folder / "python_env.yaml").write_text(
        "python: 3.11.7\nbuild_dependencies:\n- pip==24.2\n- setuptools\n- wheel\n"
        "dependencies:\n- -r requirements.txt\n",
        encoding="utf-8",
    )
    (folder / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    rows = sample[FEATURES].head(3)
    example = {"columns": FEATURES, "data": rows.to_numpy().tolist()}
    (folder / "input_example.json").write_text(json.dumps(example, default=str))
    serving = {"dataframe_split": example}
    (folder / "serving_input_example.json").write_text(json.dumps(serving, default=str, indent=2))
