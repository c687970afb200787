"""The manifest as data: round trips, NaN metrics, malformed input."""

from __future__ import annotations

import math

import pytest

from model_store import DataFingerprint, FeatureSpec, Manifest
from streamscore import jsonio
from streamscore.exceptions import IntegrityError


def sample(**changes: object) -> Manifest:
    fields: dict[str, object] = {
        "name": "fraud",
        "version": 7,
        "created_at": "2025-01-02T03:04:05.678Z",
        "task": "classification",
        "estimator": "LogisticRegression(C=1.0)",
        "libraries": {"python": "3.11.9", "scikit-learn": "1.5.2", "joblib": "1.4.2", "numpy": "2"},
        "artifact": "model.joblib",
        "sha256": "00" * 32,
        "features": (
            FeatureSpec("amount", "float"),
            FeatureSpec("country", "category", required=False, default="NL", categories=("NL",)),
        ),
        "classes": ("legit", "fraud"),
        "metrics": {"roc_auc": 0.93},
        "data": DataFingerprint("/data/train.parquet", "ab" * 32, 1000),
        "config": {"training": {"seed": 42}},
        "git_commit": "0" * 40,
        "parent": 6,
    }
    fields.update(changes)
    return Manifest(**fields)  # type: ignore[arg-type]


def test_manifest_round_trips_through_json():
    manifest = sample()
    assert Manifest.from_dict(jsonio.loads(jsonio.dumps_pretty(manifest.to_dict()))) == manifest


def test_manifest_feature_names_are_in_model_order():
    assert sample().feature_names == ["amount", "country"]
    assert sample().label == "fraud v7"


def test_manifest_writes_an_undefined_metric_as_null_and_reads_it_back_as_nan():
    data = sample(metrics={"roc_auc": float("nan")}).to_dict()
    assert data["metrics"] == {"roc_auc": None}
    assert math.isnan(Manifest.from_dict(data).metrics["roc_auc"])


def test_manifest_without_optional_lineage_round_trips():
    manifest = sample(data=None, classes=None, task="regression", git_commit=None, parent=None)
    assert Manifest.from_dict(manifest.to_dict()) == manifest


@pytest.mark.parametrize("missing", ["name", "version", "sha256", "features", "libraries"])
def test_manifest_missing_a_field_is_an_integrity_error_naming_the_file(missing):
    data = sample().to_dict()
    del data[missing]
    with pytest.raises(IntegrityError, match=r"^models/fraud/7/manifest.json: malformed manifest"):
        Manifest.from_dict(data, where="models/fraud/7/manifest.json")
