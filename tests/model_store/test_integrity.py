"""Verified loading: checksum before unpickling, manifests, scikit-learn versions."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import sklearn

import model_store.store
from streamscore import jsonio
from streamscore.exceptions import IntegrityError, VersionNotFound
from tests.model_store.factories import register
from tests.object_storage import Objects


def edit_manifest(objects: Objects, version: int, **changes: Any) -> None:
    key = f"{version}/manifest.json"
    data = jsonio.loads(objects.read(key))
    data.update(changes)
    objects.write(key, jsonio.dumps_pretty(data))


@pytest.fixture
def unpickled(monkeypatch) -> list[Any]:
    """Records every artifact the store hands to the format loader (skops or joblib)."""
    calls: list[Any] = []
    real = model_store.store.artifacts.loads

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_store.store.artifacts, "loads", spy)
    return calls


def test_a_tampered_artifact_is_refused_before_unpickling(store, objects, unpickled):
    register(store)
    objects.flip_byte("1/model.skops")
    with pytest.raises(IntegrityError, match=r"sha256 [0-9a-f]{16}\.\.\. does not match"):
        store.load(1)
    assert unpickled == []


def test_verify_reports_the_tampered_version_and_passes_the_others(store, objects):
    register(store)
    register(store)
    objects.flip_byte("1/model.skops")
    first, second = store.verify()
    assert (first.version, first.ok) == (1, False) and "does not match" in first.problem
    assert (second.version, second.ok, second.problem) == (2, True, "")


def test_promoting_a_tampered_version_is_refused(store, objects):
    register(store)
    objects.flip_byte("1/model.skops")
    with pytest.raises(IntegrityError):
        store.promote(1)
    assert "production" not in store.aliases()


@pytest.mark.backends("folder")
def test_a_missing_manifest_is_refused(store, objects):
    register(store)
    objects.delete("1/manifest.json")
    with pytest.raises(IntegrityError, match=r"manifest.json is missing"):
        store.load(1)
    assert store.versions() == []
    [result] = store.verify()
    assert not result.ok and "missing" in result.problem


@pytest.mark.backends("s3")
def test_on_object_storage_a_version_without_its_manifest_does_not_exist(store, objects):
    """The manifest is the commit point of a version on S3: without it the objects are a
    write that never finished. Its number stays taken."""
    register(store)
    objects.delete("1/manifest.json")
    with pytest.raises(VersionNotFound, match=r"has no version 1 \(versions: none\)"):
        store.load(1)
    assert store.versions() == [] and store.verify() == []
    assert register(store).version == 2


def test_a_missing_artifact_is_refused(store, objects):
    register(store)
    objects.delete("1/model.skops")
    with pytest.raises(IntegrityError, match=r"model.skops is missing"):
        store.load("candidate")
    assert not store.verify()[0].ok


def test_a_malformed_manifest_is_refused(store, objects):
    register(store)
    edit_manifest(objects, 1, features="not a list")
    with pytest.raises(IntegrityError, match=r"malformed manifest"):
        store.load(1)


def test_a_manifest_copied_from_another_version_is_refused(store, objects):
    register(store)
    register(store)
    objects.write("2/manifest.json", objects.read("1/manifest.json"))
    with pytest.raises(IntegrityError, match=r"describes cancer v1, not cancer v2"):
        store.load(2)


def test_an_artifact_outside_the_version_folder_is_refused(store, objects):
    register(store)
    edit_manifest(objects, 1, artifact="../2/model.skops")
    with pytest.raises(IntegrityError, match=r"must be a file name in the version folder"):
        store.load(1)


def test_another_scikit_learn_minor_version_is_refused_unless_allowed(
    store, objects, reopen, unpickled
):
    register(store)
    edit_manifest(objects, 1, libraries={**store.manifest(1).libraries, "scikit-learn": "0.24.2"})
    assert store.manifest(1).sha256 == hashlib.sha256(objects.read("1/model.skops")).hexdigest()
    with pytest.raises(
        IntegrityError, match=r"trained with scikit-learn 0.24.2, this process runs"
    ):
        store.load(1)
    assert unpickled == []
    assert "allow_version_mismatch" in store.verify()[0].problem
    relaxed = reopen(allow_version_mismatch=True)
    assert relaxed.load(1).manifest.version == 1
    assert relaxed.verify()[0].ok


def test_another_scikit_learn_patch_version_is_accepted(store, objects):
    register(store)
    major, minor = sklearn.__version__.split(".")[:2]
    edit_manifest(
        objects, 1, libraries={**store.manifest(1).libraries, "scikit-learn": f"{major}.{minor}.99"}
    )
    assert store.load(1).manifest.version == 1


def test_load_rebuilds_exactly_the_bytes_it_verified(store, unpickled):
    register(store)
    store.load(1)
    [(blob, artifact, *_)] = unpickled
    assert isinstance(blob, bytes) and artifact == "model.skops"  # one read, then no path
    assert hashlib.sha256(blob).hexdigest() == store.manifest(1).sha256
