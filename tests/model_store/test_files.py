"""Extra files stored with a version (examples, reference profiles), listed with their sha256."""

from __future__ import annotations

import hashlib

import pytest

from streamscore.exceptions import IntegrityError, ModelStoreError
from tests.model_store.factories import register

PROFILE = b'{"mean_radius": {"p50": 13.4}}\n'
EXAMPLES = b'{"event": {"mean_radius": 1.0}, "expect": {"dead_letter": "schema"}}\n'

# These tests reach into the version folders (planted pickles, edited files); the same
# refusals on object storage are covered by tests/model_store/test_cache.py.
pytestmark = pytest.mark.backends("folder")


def test_files_are_stored_with_the_version_and_listed_with_their_sha256(store):
    manifest = register(store, files={"profile.json": PROFILE, "examples.jsonl": EXAMPLES})
    assert manifest.files == {
        "profile.json": hashlib.sha256(PROFILE).hexdigest(),
        "examples.jsonl": hashlib.sha256(EXAMPLES).hexdigest(),
    }
    assert (store.folder / "1" / "profile.json").read_bytes() == PROFILE
    assert store.manifest(1).files == manifest.files
    assert store.read_file(1, "profile.json") == PROFILE
    assert store.read_file("candidate", "examples.jsonl") == EXAMPLES
    assert store.verify()[0].ok


def test_a_changed_file_is_refused_by_read_verify_and_promote(store):
    register(store, files={"profile.json": PROFILE})
    (store.folder / "1" / "profile.json").write_bytes(PROFILE.replace(b"13.4", b"99.9"))
    with pytest.raises(IntegrityError, match=r"profile.json: sha256 .* does not match"):
        store.read_file(1, "profile.json")
    assert "profile.json" in store.verify()[0].problem
    with pytest.raises(IntegrityError):
        store.promote(1)


def test_a_missing_or_unlisted_file_is_refused(store):
    register(store, files={"profile.json": PROFILE})
    with pytest.raises(IntegrityError, match=r"has no file 'other.json' \(its manifest lists: "):
        store.read_file(1, "other.json")
    (store.folder / "1" / "profile.json").unlink()
    with pytest.raises(IntegrityError, match=r"profile.json is missing"):
        store.read_file(1, "profile.json")


@pytest.mark.parametrize("name", ["", "../escape.json", "a/b.json", ".hidden", "manifest.json"])
def test_file_names_must_be_plain_and_not_the_versions_own(store, name):
    with pytest.raises(ModelStoreError, match=r"extra file name"):
        register(store, files={name: b"x"})
    assert store.versions() == []
