"""The worker's scoring path in one process, without a broker: the demo's breast-cancer events
as consumed records and models registered in a temporary store, served as the worker serves
them. Shared by ``bench.stages`` and ``bench.shadow_cost``."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamscore import jsonio


@dataclass
class Record:
    """A consumed record, as :class:`streamscore.wire.InputRecord` describes it."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


def demo_scoring(
    estimator: str, seeds: tuple[int, ...], batch: int
) -> tuple[list[Any], list[Record]]:
    """One :class:`worker.processor.ServingModel` per seed (versions 1, 2, ...: ``lr``, a
    scaled logistic regression with ``C = seed``, or ``hgb``), and ``batch`` events (~800-byte
    JSON, ``id`` and the 30 features) on 4 partitions."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from model_store import FeatureSpec, ModelStore
    from model_store.artifact import ArtifactPolicy
    from worker.processor import ServingModel
    from worker.validation import ValidationPolicy

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    store = ModelStore(Path(tempfile.mkdtemp(prefix="bench-")), "demo", policy=ArtifactPolicy(()))
    for seed in seeds:
        model: Any
        if estimator == "hgb":
            model = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
        else:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=seed, max_iter=5000))
        model.fit(data.data, data.target)
        store.register(
            model,
            task="classification",
            features=[FeatureSpec(n, "float") for n in names],
            classes=[0, 1],
            metrics={},
            estimator=estimator,
        )
    policy = ValidationPolicy()
    models = [
        ServingModel(
            store.load(version),
            policy,
            alias="production" if version == 1 else "candidate",
            seq=1,
            allowed_extra=("id",),
        )
        for version in range(1, len(seeds) + 1)
    ]
    records = [
        Record(
            "in",
            i % 4,
            i,
            0,
            f"e-{i}".encode(),
            jsonio.dumps(
                {
                    "id": f"e-{i}",
                    **{n: float(v) for n, v in zip(names, data.data[i % 569], strict=True)},
                }
            ),
        )
        for i in range(batch)
    ]
    return models, records
