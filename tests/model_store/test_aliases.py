"""Aliases: promote, rollback as a stack, history, the pointer workers poll."""

from __future__ import annotations

import pytest

from model_store import ModelStore
from streamscore import jsonio
from streamscore.exceptions import IntegrityError, ModelStoreError, NoHistoryError, VersionNotFound
from tests.model_store.factories import register
from tests.object_storage import Objects


@pytest.fixture
def snapshot(objects: Objects):
    """Every object under ``aliases/``, to show that a refused operation changed nothing."""
    return lambda: {key: objects.read(key) for key in objects.keys("aliases/")}


@pytest.fixture
def three(store: ModelStore) -> ModelStore:
    for _ in range(3):
        register(store)
    return store


def test_promote_moves_the_alias_and_records_the_move(three):
    first = three.promote(1, reason="first release")
    second = three.promote("2")
    assert (first.alias, first.from_version, first.to_version) == ("production", None, 1)
    assert (first.action, first.reason) == ("promote", "first release")
    assert (second.from_version, second.to_version) == (1, 2)
    assert second.seq > first.seq
    assert three.aliases()["production"] == 2
    assert three.history("production") == [first, second]


def test_promote_by_alias_copies_its_target(three):
    three.promote("candidate")
    assert three.aliases()["production"] == 3


def test_pointer_file_holds_version_seq_and_time(three, objects, backend):
    event = three.promote(2)
    pointer = jsonio.loads(objects.read("aliases/production.json"))
    expected = {"alias": "production", "version": 2, "seq": event.seq, "updated_at": event.at}
    if backend == "s3":  # the move travels with the pointer (history repaired from it)
        expected["event"] = event.to_dict()
    assert pointer == expected


def test_alias_state_is_version_and_a_seq_that_grows_on_every_move(three):
    assert three.alias_state("production") is None
    three.promote(1)
    before = three.alias_state("production")
    three.promote(2)
    three.rollback()
    after = three.alias_state("production")
    assert before is not None and after is not None
    assert before[0] == after[0] == 1
    assert after[1] > before[1]


def test_promote_a_missing_version_is_an_error_and_changes_nothing(three, snapshot):
    three.promote(1)
    before = snapshot()
    with pytest.raises(VersionNotFound, match=r"no version 9 \(versions: 1, 2, 3\)"):
        three.promote(9)
    with pytest.raises(VersionNotFound, match=r"no alias 'nightly'"):
        three.promote("nightly")
    assert snapshot() == before


def test_promote_to_an_invalid_alias_name_is_refused(three):
    for bad in ("Prod", "1st", "a b", "../x", ""):
        with pytest.raises(ModelStoreError, match=r"invalid alias"):
            three.promote(1, bad)
    assert "production" not in three.aliases()


def test_rollback_returns_to_the_previous_version_and_repeated_rollbacks_walk_back(three):
    for version in (1, 2, 3):
        three.promote(version)
    event = three.rollback(reason="bad latency")
    assert (event.action, event.from_version, event.to_version) == ("rollback", 3, 2)
    assert event.reason == "bad latency"
    assert three.rollback().to_version == 1
    assert three.aliases()["production"] == 1


def test_rollback_does_not_return_to_the_version_it_rolled_back_from(three):
    three.promote(1)
    three.promote(2)
    three.promote(3)
    three.rollback()  # 3 -> 2
    assert three.rollback().to_version == 1  # not back to 3
    three.promote(3)
    assert three.rollback().to_version == 1  # 2 was popped, it is not "before 3" any more


def test_promoting_the_current_version_again_does_not_become_a_rollback_target(three):
    three.promote(1)
    three.promote(2)
    three.promote(2, reason="again")
    assert three.rollback().to_version == 1


def test_rollback_with_no_earlier_version_is_an_error_and_changes_nothing(three, snapshot):
    with pytest.raises(NoHistoryError, match=r"'production' of cancer was never set"):
        three.rollback()
    three.promote(1)
    three.promote(2)
    three.rollback()
    before = snapshot()
    with pytest.raises(NoHistoryError, match=r"points at v1 and has no earlier version"):
        three.rollback()
    assert snapshot() == before
    assert three.aliases()["production"] == 1


def test_rollback_to_a_damaged_version_is_refused_and_changes_nothing(three, objects, snapshot):
    three.promote(1)
    three.promote(2)
    objects.flip_byte("1/model.skops")
    before = snapshot()
    with pytest.raises(IntegrityError, match=r"cannot roll 'production' of cancer back to v1"):
        three.rollback()
    assert snapshot() == before


def test_each_alias_rolls_back_through_its_own_history(three):
    three.promote(1)
    three.promote(1, "shadow")
    three.promote(2)
    three.promote(3, "shadow")
    assert three.rollback("shadow").to_version == 1
    assert three.aliases()["production"] == 2
    assert three.rollback("candidate").to_version == 2  # registrations moved candidate 1, 2, 3


def test_history_lists_moves_oldest_first_with_from_and_to(three):
    three.promote(1)
    three.promote(2, reason="better roc_auc")
    three.rollback(reason="alerts")
    assert [
        (e.action, e.from_version, e.to_version, e.reason) for e in three.history("production")
    ] == [
        ("promote", None, 1, ""),
        ("promote", 1, 2, "better roc_auc"),
        ("rollback", 2, 1, "alerts"),
    ]
    everything = three.history()
    assert [e.alias for e in everything[:3]] == ["candidate"] * 3
    assert [e.seq for e in everything] == sorted({e.seq for e in everything})


@pytest.mark.backends("folder")
def test_history_survives_a_torn_last_line(three):
    three.promote(1)
    three.promote(2)
    history_file = three.folder / "aliases" / "history.jsonl"
    with history_file.open("ab") as handle:
        handle.write(b'{"alias": "production", "from_ver')  # a crash mid-append
    three.promote(3)
    assert [e.to_version for e in three.history("production")] == [1, 2, 3]
    assert three.rollback().to_version == 2
