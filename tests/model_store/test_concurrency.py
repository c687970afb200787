"""Atomic versions and one writer at a time: temporary folders, the lock, concurrent writers."""

from __future__ import annotations

import fcntl
import itertools
import multiprocessing
import os
import threading
import time

import pytest

from model_store import ModelStore
from streamscore.exceptions import ModelStoreError
from tests.model_store.factories import promote_in_process, register, register_in_process


@pytest.mark.backends("folder")
def test_a_half_written_version_is_invisible(store):
    register(store)
    crashed = store.folder / ".tmp-3f2a9c"
    crashed.mkdir()
    (crashed / "model.skops").write_bytes(b"partial")
    assert [m.version for m in store.versions()] == [1]
    assert [r.version for r in store.verify()] == [1]
    assert register(store).version == 2


@pytest.mark.backends("folder")
def test_a_failed_registration_leaves_no_temporary_folder(store, monkeypatch):
    register(store)

    def crash(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("model_store.local_storage.fsync_path", crash)
    with pytest.raises(OSError, match="disk full"):
        register(store)
    assert [p.name for p in store.folder.iterdir() if p.name.startswith(".tmp-")] == []
    assert [m.version for m in store.versions()] == [1]


def test_concurrent_registrations_in_processes_get_distinct_versions(store, store_options):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    processes = [
        ctx.Process(target=register_in_process, args=(str(store.root), store_options, 2, queue))
        for _ in range(2)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in range(4)) == [1, 2, 3, 4]
    assert all(r.ok for r in store.verify()) and len(store.verify()) == 4
    assert_candidate_only_moved_forward_to(store, 4)


def test_concurrent_registrations_in_threads_get_distinct_versions(store):
    versions: list[int] = []
    threads = [
        threading.Thread(target=lambda: versions.append(register(store).version)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(versions) == [1, 2, 3, 4]
    assert store.aliases() == {"candidate": 4}
    assert_candidate_only_moved_forward_to(store, 4)


def assert_candidate_only_moved_forward_to(store, newest: int) -> None:
    """Concurrent registrations leave ``candidate`` on the newest version and never move it
    back (on object storage a later registration may finish first: the earlier one then
    leaves the alias where it is)."""
    moves = [e.to_version for e in store.history("candidate")]
    assert moves == sorted(set(moves)) and moves[-1] == newest
    assert store.aliases() == {"candidate": newest}


def test_concurrent_promotes_keep_a_consistent_history(store):
    for _ in range(3):
        register(store)
    threads = [
        threading.Thread(target=store.promote, args=(v,)) for v in (1, 2, 3) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    history = store.history("production")
    assert len(history) == 9
    for before, after in itertools.pairwise(history):
        assert after.from_version == before.to_version and after.seq > before.seq
    assert store.aliases()["production"] == history[-1].to_version


def hold_lock(store: ModelStore) -> int:
    store.folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(store.folder / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@pytest.mark.backends("folder")
def test_a_writer_waits_for_the_lock_then_proceeds(store):
    register(store)
    fd = hold_lock(store)
    threading.Timer(0.2, os.close, args=(fd,)).start()
    started = time.monotonic()
    store.promote(1)
    assert time.monotonic() - started >= 0.15
    assert store.aliases()["production"] == 1


@pytest.mark.backends("folder")
def test_a_lock_held_too_long_times_out_with_advice_and_changes_nothing(store):
    register(store)
    fd = hold_lock(store)
    try:
        impatient = ModelStore(store.root, store.name, lock_timeout_ms=100)
        with pytest.raises(ModelStoreError, match=r"locked by another writer .* lock_timeout_ms"):
            impatient.promote(1)
        with pytest.raises(ModelStoreError, match=r"more than 100 ms"):
            register(impatient)
    finally:
        os.close(fd)
    assert "production" not in store.aliases()
    assert [m.version for m in store.versions()] == [1]
    assert [p.name for p in store.folder.iterdir() if p.name.startswith(".tmp-")] == []


def test_concurrent_promotes_from_two_processes_each_win_one_step_and_keep_all_history(
    store, store_options
):
    """Two processes promote at once, with nothing but the store between them (on S3: no
    lock, only compare-and-swap). Every promote lands exactly once: the history is one
    unbroken chain of all of them, no step claimed by both."""
    for _ in range(4):
        register(store)
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    plans = ([1, 2, 3, 4, 1, 2], [4, 3, 2, 1, 4, 3])
    processes = [
        ctx.Process(
            target=promote_in_process, args=(str(store.root), store_options, plan, start, queue)
        )
        for plan in plans
    ]
    for p in processes:
        p.start()
    start.set()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    moves = sorted(queue.get(timeout=5) for _ in range(12))
    history = store.history("production")
    assert [(e.seq, e.from_version, e.to_version) for e in history] == moves
    assert len({e.seq for e in history}) == 12
    assert history[0].from_version is None
    for before, after in itertools.pairwise(history):
        assert after.from_version == before.to_version and after.seq > before.seq
    assert store.aliases()["production"] == history[-1].to_version


@pytest.mark.backends("s3")
def test_a_promote_that_loses_the_compare_and_swap_moves_on_from_the_winner(
    store, reopen, monkeypatch
):
    for _ in range(3):
        register(store)
    store.promote(1)
    real_replace = store.storage.replace
    raced: list[int] = []

    def replace_after_a_rival(key: str, data: bytes, *, etag: str | None) -> bool:
        if not raced:  # between our read of the pointer and our write, another host promotes
            raced.append(reopen().promote(2).seq)
        return real_replace(key, data, etag=etag)

    monkeypatch.setattr(store.storage, "replace", replace_after_a_rival)
    event = store.promote(3)
    assert (event.from_version, event.to_version) == (2, 3) and event.seq > raced[0]
    assert [(e.from_version, e.to_version) for e in store.history("production")] == [
        (None, 1),
        (1, 2),
        (2, 3),
    ]


@pytest.mark.backends("s3")
def test_a_registration_that_loses_its_version_number_takes_the_next(store, reopen, monkeypatch):
    register(store)
    real_publish = store.storage.publish
    rivals: list[int] = []

    def publish_after_a_rival(version: int, files: dict[str, bytes]) -> bool:
        if not rivals:  # another host registers the same number first
            rivals.append(register(reopen()).version)
        return real_publish(version, files)

    monkeypatch.setattr(store.storage, "publish", publish_after_a_rival)
    assert register(store).version == 3
    assert rivals == [2]
    assert [m.version for m in store.versions()] == [1, 2, 3] and all(r.ok for r in store.verify())


@pytest.mark.backends("s3")
def test_a_move_recorded_only_in_its_pointer_is_restored_to_the_history(store, objects):
    """A writer that died between replacing the pointer and writing its history object."""
    register(store)
    register(store)
    event = store.promote(2)
    [key] = [k for k in objects.keys("aliases/history/") if k.endswith(".production.json")]
    objects.delete(key)
    assert store.history("production")[-1] == event
    assert objects.keys("aliases/history/").count(key) == 1


def test_a_registration_that_finishes_after_a_newer_one_leaves_candidate_on_the_newer(store):
    from model_store.aliases import AliasMovedOn

    register(store)
    register(store)
    with pytest.raises(AliasMovedOn, match="already points at v2"):
        store.book.move("candidate", 1, action="register", at="late", forward_only=True)
    assert store.aliases() == {"candidate": 2}
    assert [e.to_version for e in store.history("candidate")] == [1, 2]
