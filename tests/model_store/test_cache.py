"""A worker's artifact cache: each version downloaded once, verified on every load."""

from __future__ import annotations

import pytest

from model_store import ModelStore
from streamscore.exceptions import IntegrityError
from tests.model_store.factories import flip_byte, register


@pytest.fixture
def cached(reopen, tmp_path) -> ModelStore:
    return reopen(cache_dir=tmp_path / "cache")


def test_load_keeps_the_artifact_in_the_cache_and_reads_it_from_there(store, cached, objects):
    register(store)
    assert cached.cache is not None
    first = cached.load(1)
    copy = cached.cache.path(first.manifest)
    assert copy.read_bytes() == objects.read("1/model.skops")
    objects.delete("1/model.skops")  # not downloaded again: the cached copy serves
    assert cached.load(1).manifest == first.manifest


def test_a_tampered_cached_copy_is_replaced_by_a_fresh_download(store, cached, objects):
    register(store)
    manifest = cached.load(1).manifest
    assert cached.cache is not None
    flip_byte(cached.cache.path(manifest))
    assert cached.load(1).manifest == manifest
    assert cached.cache.path(manifest).read_bytes() == objects.read("1/model.skops")


def test_a_tampered_object_is_refused_and_never_cached(store, cached, objects):
    register(store)
    objects.flip_byte("1/model.skops")
    with pytest.raises(IntegrityError, match=r"does not match the manifest"):
        cached.load(1)
    assert cached.cache is not None
    assert not cached.cache.path(cached.manifest(1)).exists()
