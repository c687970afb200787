"""The versioned model store: versions, aliases, rollback, verified loading, atomicity."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from model_store import FeatureSpec, ModelStore
from streamscore import jsonio
from streamscore.exceptions import IntegrityError, ModelStoreError, NoHistoryError, VersionNotFound

X, Y = load_iris(return_X_y=True)
FEATURES = [FeatureSpec(f"f{i}", "float") for i in range(4)]


def fitted(C: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=1000).fit(X, Y)


def register(store: ModelStore, C: float = 1.0, **kwargs):
    return store.register(
        fitted(C),
        task="classification",
        features=FEATURES,
        classes=[0, 1, 2],
        metrics={"accuracy": 0.9},
        estimator=f"LogisticRegression(C={C})",
        **kwargs,
    )


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models", "iris", lock_timeout_ms=2000)


def test_register_writes_version_folder_with_artifact_and_manifest(store):
    manifest = register(store, git_commit="abc123", parent=None)
    folder = store.folder / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.joblib"]
    data = jsonio.loads((folder / "manifest.json").read_bytes())
    for key in (
        "name",
        "version",
        "created_at",
        "task",
        "estimator",
        "libraries",
        "sha256",
        "features",
        "classes",
        "metrics",
        "data",
        "config",
        "git_commit",
        "parent",
    ):
        assert key in data
    assert set(data["libraries"]) == {"python", "scikit-learn", "joblib", "numpy"}
    assert data["features"][0] == {
        "name": "f0",
        "dtype": "float",
        "required": True,
        "default": None,
        "categories": [],
    }
    assert manifest.version == 1 and manifest.git_commit == "abc123"


def test_versions_count_up_and_new_versions_become_candidate(store):
    assert [register(store).version for _ in range(3)] == [1, 2, 3]
    assert [m.version for m in store.versions()] == [1, 2, 3]
    assert store.aliases() == {"candidate": 3}


def test_load_by_version_or_alias_gives_a_working_model(store):
    register(store)
    store.promote(1)
    for ref in (1, "1", "production"):
        loaded = store.load(ref)
        assert loaded.manifest.version == 1
        assert loaded.model.predict(X[:3]).tolist() == [0, 0, 0]


def test_resolve_unknown_version_or_alias_lists_what_exists(store):
    register(store)
    with pytest.raises(VersionNotFound, match=r"no version 7 \(versions: 1\)"):
        store.resolve(7)
    with pytest.raises(VersionNotFound, match=r"no alias 'prod' \(aliases: candidate\)"):
        store.resolve("prod")


def test_promote_moves_alias_and_records_history(store):
    register(store)
    register(store)
    first = store.promote(1, reason="first")
    second = store.promote(2)
    assert (first.from_version, first.to_version) == (None, 1)
    assert (second.from_version, second.to_version) == (1, 2)
    assert store.aliases()["production"] == 2
    history = store.history("production")
    assert [(e.action, e.to_version, e.reason) for e in history] == [
        ("promote", 1, "first"),
        ("promote", 2, ""),
    ]
    assert history[0].seq < history[1].seq


def test_promote_missing_version_is_an_error_and_changes_nothing(store):
    register(store)
    store.promote(1)
    before = (store.aliases(), store.history())
    with pytest.raises(VersionNotFound):
        store.promote(9)
    assert (store.aliases(), store.history()) == before


def test_rollback_returns_to_previous_versions_and_walks_back(store):
    for _ in range(3):
        register(store)
    for v in (1, 2, 3):
        store.promote(v)
    assert store.rollback().to_version == 2
    assert store.rollback().to_version == 1
    with pytest.raises(NoHistoryError, match=r"no earlier version"):
        store.rollback()
    assert store.aliases()["production"] == 1


def test_rollback_after_a_new_promote_does_not_return_to_the_rolled_back_version(store):
    for _ in range(3):
        register(store)
    store.promote(1)
    store.promote(2)
    store.rollback()  # back to 1
    store.promote(3)
    assert store.rollback().to_version == 1


def test_rollback_without_history_is_an_error_and_changes_nothing(store):
    register(store)
    store.promote(1)
    before = store.history()
    with pytest.raises(NoHistoryError):
        store.rollback()
    assert store.history() == before
    with pytest.raises(NoHistoryError):
        store.rollback("shadow")


def test_alias_state_changes_on_every_move(store):
    register(store)
    register(store)
    assert store.alias_state("production") is None
    store.promote(1)
    a = store.alias_state("production")
    store.promote(2)
    store.rollback()
    b = store.alias_state("production")
    assert a is not None and b is not None
    assert a[0] == b[0] == 1 and b[1] > a[1]


def test_invalid_alias_name_is_refused(store):
    register(store)
    with pytest.raises(ModelStoreError, match=r"invalid alias"):
        store.promote(1, "Prod!")


def test_tampered_artifact_is_refused_before_unpickling(store):
    register(store)
    artifact = store.folder / "1" / "model.joblib"
    data = bytearray(artifact.read_bytes())
    data[100] ^= 0x01
    artifact.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"does not match the manifest"):
        store.load(1)
    [result] = store.verify()
    assert not result.ok and "sha256" in result.problem


def test_promoting_a_tampered_version_is_refused(store):
    register(store)
    (store.folder / "1" / "model.joblib").write_bytes(b"not a pickle")
    with pytest.raises(IntegrityError):
        store.promote(1)
    assert "production" not in store.aliases()


def test_missing_manifest_is_refused(store):
    register(store)
    (store.folder / "1" / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match=r"manifest.json is missing"):
        store.load(1)
    assert store.versions() == []
    assert not store.verify()[0].ok


def test_other_sklearn_minor_version_is_refused_unless_allowed(store, tmp_path):
    register(store)
    path = store.folder / "1" / "manifest.json"
    data = jsonio.loads(path.read_bytes())
    data["libraries"]["scikit-learn"] = "0.24.2"
    path.write_bytes(jsonio.dumps(data))
    with pytest.raises(IntegrityError, match=r"trained with scikit-learn 0.24.2"):
        store.load(1)
    relaxed = ModelStore(store.root, store.name, allow_version_mismatch=True)
    assert relaxed.load(1).manifest.version == 1


def test_half_written_version_is_invisible(store):
    register(store)
    staging = store.folder / ".tmp-crashed"
    staging.mkdir()
    (staging / "model.joblib").write_bytes(b"partial")
    assert [m.version for m in store.versions()] == [1]
    assert register(store).version == 2


def _register_in_process(root: str, out: multiprocessing.Queue[int]) -> None:
    store = ModelStore(Path(root), "iris")
    out.put(register(store).version)


def test_concurrent_registrations_in_processes_get_distinct_versions(store):
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[int] = ctx.Queue()
    processes = [
        ctx.Process(target=_register_in_process, args=(str(store.root), queue)) for _ in range(3)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=60)
    versions = sorted(queue.get(timeout=5) for _ in processes)
    assert versions == [1, 2, 3]
    assert store.verify() and all(r.ok for r in store.verify())


def test_concurrent_registrations_in_threads_get_distinct_versions(store):
    versions: list[int] = []
    threads = [
        threading.Thread(target=lambda: versions.append(register(store).version)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == [1, 2, 3, 4]


def test_lock_held_by_another_writer_times_out_with_advice(store):
    import fcntl
    import os

    register(store)
    fd = os.open(store.folder / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        short = ModelStore(store.root, store.name, lock_timeout_ms=100)
        with pytest.raises(ModelStoreError, match=r"lock_timeout_ms"):
            short.promote(1)
    finally:
        os.close(fd)


def test_regression_models_have_no_classes(store):
    from sklearn.linear_model import Ridge

    manifest = store.register(
        Ridge().fit(X, X[:, 0]),
        task="regression",
        features=FEATURES,
        classes=None,
        metrics={"rmse": 0.1},
        estimator="Ridge()",
    )
    assert store.manifest(manifest.version).classes is None
    assert np.allclose(store.load(manifest.version).model.predict(X[:2]), X[:2, 0], atol=0.5)
