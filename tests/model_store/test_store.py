"""Registering, listing, resolving and loading versions."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import sklearn

from model_store import DataFingerprint, FeatureSpec, ModelStore, current_git_commit
from streamscore import jsonio
from streamscore.config import config_from_dict
from streamscore.exceptions import ModelStoreError, VersionNotFound
from tests.model_store.factories import (
    MODEL_NAME,
    classifier,
    dataset,
    features,
    register,
    register_regressor,
)


def test_register_writes_a_version_folder_with_artifact_and_manifest(store, objects):
    manifest = register(store)
    assert objects.keys("1/") == ["1/manifest.json", "1/model.skops"]
    assert manifest.version == 1 and manifest.name == MODEL_NAME
    assert manifest.artifact == "model.skops"
    assert re.fullmatch(r"[0-9a-f]{64}", manifest.sha256)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", manifest.created_at)
    on_disk = jsonio.loads(objects.read("1/manifest.json"))
    assert on_disk == jsonio.loads(jsonio.dumps_pretty(manifest.to_dict()))
    assert objects.read("1/manifest.json") == jsonio.dumps_pretty(manifest.to_dict())


def test_register_records_schema_metrics_libraries_and_lineage(store):
    fingerprint = DataFingerprint(path="/data/train.csv", sha256="ab" * 32, rows=569)
    manifest = register(
        store,
        data=fingerprint,
        config={"training": {"seed": 42}},
        git_commit="0123abc",
        parent=None,
    )
    second = register(store, parent=manifest.version)
    read = store.manifest(1)
    assert read == manifest
    assert read.features[0] == FeatureSpec("mean_radius", "float")
    assert read.feature_names == dataset()[2]
    assert read.classes == (0, 1)
    assert read.metrics["roc_auc"] == 0.99451
    assert read.data == fingerprint
    assert read.config == {"training": {"seed": 42}}
    assert read.git_commit == "0123abc"
    assert set(read.libraries) == {"python", "scikit-learn", "skops", "joblib", "numpy"}
    assert read.libraries["scikit-learn"] == sklearn.__version__
    assert second.parent == 1


def test_versions_count_up_from_one(store):
    assert store.versions() == []
    assert [register(store).version for _ in range(3)] == [1, 2, 3]
    assert [m.version for m in store.versions()] == [1, 2, 3]


def test_register_points_candidate_at_the_new_version_unless_told_otherwise(store):
    register(store)
    register(store)
    assert store.aliases() == {"candidate": 2}
    register(store, aliases=())
    register(store, aliases=("production", "shadow"))
    assert store.aliases() == {"candidate": 2, "production": 4, "shadow": 4}


def test_versions_skip_an_unreadable_version_with_a_warning(store, objects, caplog):
    register(store)
    register(store)
    objects.write("1/manifest.json", b"{not json")
    with caplog.at_level(logging.WARNING, logger="model_store"):
        assert [m.version for m in store.versions()] == [2]
    assert "skipping cancer v1" in caplog.text


def test_manifest_resolves_a_version_number_its_string_or_an_alias(store):
    register(store)
    register(store)
    store.promote(1)
    assert store.manifest(2).version == 2
    assert store.manifest("2").version == 2
    assert store.manifest("production").version == 1
    assert store.manifest("candidate").version == 2
    assert store.resolve("production") == 1


def test_resolve_unknown_version_or_alias_names_what_exists(store):
    register(store)
    with pytest.raises(VersionNotFound, match=r"has no version 7 \(versions: 1\)"):
        store.resolve(7)
    with pytest.raises(VersionNotFound, match=r"no alias 'prod' \(aliases: candidate, versions: 1"):
        store.resolve("prod")


@pytest.mark.backends("folder")
def test_resolve_a_path_like_ref_is_not_found_without_reading_outside_the_store(store):
    register(store)
    (store.root / "escape.json").write_bytes(jsonio.dumps({"version": 1, "seq": 1}))
    with pytest.raises(VersionNotFound):
        store.resolve("../../escape")


def test_load_returns_the_manifest_and_a_working_model(store):
    register(store)
    X, y, _ = dataset()
    loaded = store.load("candidate")
    assert loaded.manifest == store.manifest(1)
    assert (loaded.model.predict(X) == classifier().predict(X)).all()
    assert (loaded.model.predict(X) == y).mean() > 0.95


def test_regression_models_have_no_classes(store):
    manifest = register_regressor(store)
    assert store.manifest(manifest.version).classes is None
    X, _, _ = dataset()
    assert np.allclose(store.load(1).model.predict(X[:5, 1:]), X[:5, 0], atol=1.0)


def test_numpy_class_labels_are_recorded_as_plain_values(store):
    manifest = register(store, classes=classifier().classes_)
    assert manifest.classes == (0, 1)
    assert all(type(c) is int for c in store.manifest(1).classes or ())


def test_undefined_metric_is_kept_as_nan(store):
    register(store, metrics={"roc_auc": float("nan"), "accuracy": 0.5})
    metrics = store.manifest(1).metrics
    assert np.isnan(metrics["roc_auc"]) and metrics["accuracy"] == 0.5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "clustering"}, r"task must be one of classification, regression"),
        ({"features": []}, r"at least one feature"),
        ({"features": [FeatureSpec("a", "float"), FeatureSpec("a", "int")]}, r"'a' appears twice"),
        ({"features": [FeatureSpec("a", "double")]}, r"dtype 'double'; use one of float, int"),
        ({"classes": None}, r"classifier needs its class labels"),
        ({"aliases": ("Production",)}, r"invalid alias 'Production'"),
        ({"config": {"path": Path("/x")}}, r"cannot be written as JSON"),
    ],
)
def test_register_refuses_what_cannot_be_served_and_writes_nothing(
    store, objects, changes, message
):
    with pytest.raises(ModelStoreError, match=message):
        register(store, **changes)
    assert store.versions() == [] and store.aliases() == {}
    assert objects.keys() == [] and leftovers(store) == []


def test_register_refuses_a_model_skops_cannot_write_safely_and_leaves_nothing(store, objects):
    with pytest.raises(ModelStoreError, match=r"outside the trusted list: .*<lambda>"):
        store.register(
            lambda x: x,
            task="regression",
            features=features(),
            classes=None,
            metrics={},
            estimator="lambda",
        )
    assert store.versions() == [] and objects.keys() == [] and leftovers(store) == []


def test_version_numbers_are_not_reused_after_a_version_is_deleted(store, objects):
    register(store)
    register(store)
    for key in objects.keys("2/"):  # candidate's history still names v2
        objects.delete(key)
    assert register(store).version == 3


def test_model_name_must_be_a_plain_folder_name(store_root):
    for bad in ("", "../up", "a/b", ".hidden"):
        with pytest.raises(ModelStoreError, match=r"invalid model name"):
            ModelStore(store_root, bad)


def test_from_config_uses_the_model_store_section(tmp_path):
    cfg = config_from_dict(
        {
            "model_store": {
                "root": "models",
                "model_name": "fraud",
                "lock_timeout_ms": 1234,
                "allow_version_mismatch": True,
            }
        },
        base_dir=tmp_path,
    )
    store = ModelStore.from_config(cfg)
    assert store.folder == tmp_path.resolve() / "models" / "fraud"
    assert store.lock_timeout_ms == 1234 and store.allow_version_mismatch


def leftovers(store: ModelStore) -> list[str]:
    """``.tmp-*`` folders of a folder store (writes that did not finish)."""
    if store.folder is None or not store.folder.exists():
        return []
    return [p.name for p in store.folder.glob(".tmp-*")]


def test_current_git_commit_is_none_outside_a_checkout(tmp_path):
    assert current_git_commit(tmp_path) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_current_git_commit_names_the_checked_out_commit():
    commit = current_git_commit(Path(__file__).parent)
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)
