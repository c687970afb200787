"""Events and models: the demo's breast-cancer rows and two trained pipelines.

Events have the demo's shape (``training.demo_data``): ``id``, the 30 features under their
snake_case names in dataset order, and the known ``label`` (ignored by the scorers), about
800 bytes of JSON each. Models are trained with ``training.run.train`` on the demo CSV: the
demo's logistic regression, and a HistGradientBoosting classifier (100 iterations).
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

MODELS = {
    "lr": ("logistic regression", "sklearn.linear_model.LogisticRegression", {"max_iter": 2000}),
    "hgb": (
        "HistGradientBoosting",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 100},
    ),
}


class Events:
    """Demo events, cycled over all 569 rows, with unique ids."""

    def __init__(self) -> None:
        from sklearn.datasets import load_breast_cancer

        from training.demo_data import snake_case

        frame = load_breast_cancer(as_frame=True).frame.rename(columns=snake_case)
        self.features = [c for c in frame.columns if c != "target"]
        self.rows: list[dict[str, Any]] = []
        for row in frame.to_dict(orient="records"):
            self.rows.append(
                {
                    **{name: float(row[name]) for name in self.features},
                    "label": int(row["target"]),
                }
            )

    def event(self, i: int, prefix: str = "bc") -> tuple[bytes, bytes]:
        """``(key, value)`` of event ``i``: key = id."""
        ident = f"{prefix}-{i:07d}"
        return ident.encode(), orjson.dumps({"id": ident, **self.rows[i % len(self.rows)]})

    def backlog(self, n: int, prefix: str = "bc") -> tuple[list[bytes], list[bytes]]:
        keys: list[bytes] = []
        values: list[bytes] = []
        for i in range(n):
            k, v = self.event(i, prefix)
            keys.append(k)
            values.append(v)
        return keys, values


@dataclass(frozen=True)
class TrainedModel:
    key: str  # lr | hgb
    title: str
    estimator: str
    store_root: Path
    model_name: str  # production alias points at version 1
    artifact: Path  # a joblib copy of the model (what the baseline and the peer load)
    features: list[str]
    classes: list[Any]
    metrics: dict[str, float]


def _base_config(work: Path) -> Any:
    from streamscore.config import config_from_dict

    return config_from_dict(
        {
            "model_store": {"root": str(work / "models"), "model_name": "bench-lr"},
            "training": {"data_path": str(work / "data" / "train.csv")},
            "demo": {"events_path": str(work / "data" / "events.jsonl")},
            "worker": {"log_dir": str(work / "log")},
            "kafka": {"bootstrap_servers": "127.0.0.1:9"},  # training never talks to Kafka here
        },
        environ={},
        base_dir=work,
    )


def train_models(work: Path, keys: list[str]) -> dict[str, TrainedModel]:
    """Train each model with ``training.run.train`` and promote its version 1."""
    from model_store import ModelStore
    from streamscore.config import with_overrides
    from training.demo_data import export_demo_data
    from training.run import train

    base = _base_config(work)
    export_demo_data(base)
    out: dict[str, TrainedModel] = {}
    for key in keys:
        title, estimator, params = MODELS[key]
        cfg = with_overrides(
            base,
            model_store={"model_name": f"bench-{key}"},
            training={"estimator": estimator, "estimator_params": dict(params)},
        )
        result = train(cfg, promote=False, progress=False)
        store = ModelStore.from_config(cfg)
        store.promote(result.manifest.version, "production", reason="bench")
        m = result.manifest
        out[key] = TrainedModel(
            key=key,
            title=title,
            estimator=m.estimator,
            store_root=cfg.model_store.root,
            model_name=cfg.model_store.model_name,
            artifact=_joblib_copy(store, m.version, work / "artifacts" / f"{key}.joblib"),
            features=[f.name for f in m.features],
            classes=list(m.classes or ()),
            metrics=dict(m.metrics),
        )
    return out


def _joblib_copy(store: Any, version: int, path: Path) -> Path:
    """The store keeps skops; the baseline and the Quix peer load a plain joblib file, as a
    data scientist's own script would."""
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(store.load(version).model, path)
    return path


def dataframe_variants(work: Path, models: dict[str, TrainedModel]) -> dict[str, TrainedModel]:
    """``<key>-df`` for each trained model: the same pipeline refitted on a DataFrame of the
    same rows, so it has ``feature_names_in_`` and workers serve it DataFrames (pandas loaded)."""
    import pandas as pd
    from sklearn.base import clone

    from model_store import ModelStore

    frame = pd.read_csv(work / "data" / "train.csv")
    out: dict[str, TrainedModel] = {}
    for key, m in models.items():
        loaded = ModelStore(m.store_root, m.model_name).load("production")
        rows = frame.dropna(subset=["target"])
        fitted = clone(loaded.model).fit(rows[m.features].astype("float64"), rows["target"])
        name = f"{m.model_name}-df"
        store = ModelStore(m.store_root, name)
        manifest = store.register(
            fitted,
            task="classification",
            features=[
                dataclasses.replace(f, frame_dtype="float64") for f in loaded.manifest.features
            ],
            classes=loaded.manifest.classes,
            metrics=m.metrics,
            estimator=f"{m.estimator} fitted on a DataFrame",
            aliases=("production",),
        )
        out[f"{key}-df"] = dataclasses.replace(
            m,
            key=f"{key}-df",
            title=f"{m.title} (DataFrame)",
            model_name=name,
            artifact=store.folder / str(manifest.version) / manifest.artifact,
        )
    return out


def fresh_store(
    models: dict[str, TrainedModel],
    keys: list[str],
    *,
    production: bool,
    label: str,
    profile: bool = False,
) -> tuple[Path, str]:
    """A fresh model name holding ``keys`` as versions 1, 2, ... (copies of the trained
    pipelines); version 1 is ``production`` only when asked, the others are candidates.

    The copies carry no reference profile, so the workers serving them count no drift, unless
    ``profile``: then each carries its trained version's ``profile.json`` (as ``streamscore
    train`` stores it) and the workers count drift against it.
    """
    from model_store import ModelStore
    from monitor.profile import PROFILE_FILE

    root = models[keys[0]].store_root
    name = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    store = ModelStore(root, name)
    for position, key in enumerate(keys):
        loaded = ModelStore(root, models[key].model_name).load("production")
        m = loaded.manifest
        store.register(
            loaded.model,
            task=m.task,
            features=m.features,
            classes=m.classes,
            metrics=m.metrics,
            estimator=m.estimator,
            aliases=("production",) if production and position == 0 else ("candidate",),
            files=(
                {PROFILE_FILE: ModelStore(root, models[key].model_name).read_file(m, PROFILE_FILE)}
                if profile
                else None
            ),
        )
    return root, name
