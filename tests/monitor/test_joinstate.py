"""The join of predictions with delayed labels: order, duplicates, unknown ids, TTLs, restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.joinstate import JoinState, JoinStateError, Label, Prediction

HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR  # a window boundary


def pred(i: int, *, version: int = 1, at: int = T0, p1: float = 0.9) -> Prediction:
    return Prediction(
        id=f"e{i}",
        version=version,
        predicted_at_ms=at,
        prediction=int(p1 >= 0.5),
        probabilities={"0": 1 - p1, "1": p1},
    )


def lab(i: int, label: int = 1, *, at: int = T0 + 1000) -> Label:
    return Label(id=f"e{i}", label=label, arrived_at_ms=at)


@pytest.fixture
def state(tmp_path: Path) -> JoinState:
    return JoinState(tmp_path / "join.sqlite")


def test_join_label_after_its_prediction(state: JoinState) -> None:
    state.apply([pred(1), pred(2, p1=0.2)], [], {})
    result = state.apply([], [lab(1, 1), lab(2, 1)], {})
    assert result.counts["joined"] == 2
    metrics = state.cumulative(1).metrics()
    assert metrics["labelled"] == 2 and metrics["accuracy"] == 0.5
    assert metrics["coverage"] == 1.0


def test_join_label_before_its_prediction_waits(state: JoinState) -> None:
    state.apply([], [lab(1, 1, at=T0)], {})
    assert state.pending_labels() == 1
    result = state.apply([pred(1, at=T0 + HOUR - 1)], [], {})
    assert result.counts["waiting_labels_joined"] == 1
    assert state.pending_labels() == 0
    assert state.cumulative(1).metrics()["accuracy"] == 1.0


def test_label_waiting_longer_than_an_hour_is_an_unknown_id(state: JoinState) -> None:
    state.apply([], [lab(1, at=T0)], {})
    result = state.apply([pred(1, at=T0 + HOUR + 1)], [], {})
    assert result.counts["joined"] == 0 and result.counts["unknown_labels"] == 1
    assert state.cumulative(1).metrics()["labelled"] == 0


def test_label_and_prediction_in_one_batch_join(state: JoinState) -> None:
    result = state.apply([pred(1)], [lab(1)], {})
    assert result.counts["joined"] == 1


def test_duplicate_labels_count_once(state: JoinState) -> None:
    state.apply([pred(1)], [], {})
    state.apply([], [lab(1, 1), lab(1, 0)], {})
    result = state.apply([], [lab(1, 0)], {})
    assert result.counts["duplicate_labels"] == 1
    assert state.counters()["duplicate_labels"] == 2
    metrics = state.cumulative(1).metrics()
    assert metrics["labelled"] == 1 and metrics["accuracy"] == 1.0  # the first label wins


def test_duplicate_waiting_labels_count_once(state: JoinState) -> None:
    state.apply([], [lab(1), lab(1)], {})
    state.apply([], [lab(1)], {})
    assert state.counters()["duplicate_labels"] == 2 and state.pending_labels() == 1


def test_duplicate_predictions_keep_the_first(state: JoinState) -> None:
    state.apply([pred(1, version=1)], [], {})
    state.apply([pred(1, version=2), pred(1, version=2)], [lab(1)], {})
    assert state.counters()["duplicate_predictions"] == 2
    assert state.cumulative(1).metrics()["predictions"] == 1
    assert state.cumulative(1).metrics()["labelled"] == 1
    assert state.cumulative(2).metrics()["predictions"] == 0


def test_unknown_ids_expire_after_the_wait(state: JoinState) -> None:
    state.apply([], [lab(7, at=T0)], {})
    assert state.expire(T0 + HOUR - 1)["unknown_labels"] == 0
    assert state.expire(T0 + HOUR + 1)["unknown_labels"] == 1
    assert state.pending_labels() == 0 and state.counters()["unknown_labels"] == 1


def test_label_past_the_ttl_is_not_joined(state: JoinState) -> None:
    state.apply([pred(1, at=T0), pred(2, at=T0)], [], {})
    result = state.apply([], [lab(1, at=T0 + 7 * DAY + 1), lab(2, at=T0 + 7 * DAY)], {})
    assert result.counts["expired_labels"] == 1 and result.counts["joined"] == 1


def test_predictions_past_the_ttl_are_dropped(state: JoinState) -> None:
    state.apply([pred(1, at=T0), pred(2, at=T0 + DAY)], [], {})
    assert state.expire(T0 + 7 * DAY + 1)["expired_predictions"] == 1
    assert state.held == 1
    state.apply([], [lab(1, at=T0 + 7 * DAY + 2)], {})
    assert state.pending_labels() == 1  # its prediction is gone: it waits, then is unknown


def test_held_predictions_are_bounded(tmp_path: Path) -> None:
    state = JoinState(tmp_path / "s.sqlite", max_predictions=10)
    state.apply([pred(i, at=T0 + i) for i in range(15)], [], {})
    assert state.held == 10 and state.counters()["evicted_predictions"] == 5
    state.apply([], [lab(0), lab(14)], {})  # e0 was the oldest: evicted
    assert state.cumulative(1).metrics()["labelled"] == 1


def test_windows_are_cut_by_prediction_time_per_version(state: JoinState) -> None:
    state.apply(
        [pred(1, at=T0), pred(2, at=T0 + HOUR - 1), pred(3, at=T0 + HOUR, version=2)],
        [lab(1), lab(2), lab(3, 0)],
        {},
    )
    windows = [(v, w, a.metrics()["labelled"]) for v, w, a in state.windows()]
    assert windows == [(1, T0, 2), (2, T0 + HOUR, 1)]
    assert state.cumulative(2).metrics()["accuracy"] == 0.0


def test_state_and_offsets_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "join.sqlite"
    first = JoinState(path)
    first.apply([pred(1), pred(2)], [lab(1)], {("out", 0): 2, ("labels", 3): 1})
    first.close()
    again = JoinState(path)
    assert again.offsets() == {("out", 0): 2, ("labels", 3): 1}
    assert again.held == 2
    again.apply([], [lab(2), lab(1)], {("labels", 3): 3})
    metrics = again.cumulative(1).metrics()
    assert metrics["labelled"] == 2 and again.counters()["duplicate_labels"] == 1


def test_a_failed_batch_changes_nothing(state: JoinState) -> None:
    state.apply([pred(1)], [], {("out", 0): 1})

    unserialisable = Label("e9", object(), T0)  # waits, so it is encoded: TypeError
    with pytest.raises(TypeError):
        state.apply([pred(2)], [lab(1), unserialisable], {("out", 0): 3})
    assert state.offsets() == {("out", 0): 1}
    assert state.held == 1 and state.cumulative(1).metrics()["labelled"] == 0


def test_a_changed_window_length_is_refused(tmp_path: Path) -> None:
    JoinState(tmp_path / "j.sqlite", window_ms=HOUR).close()
    with pytest.raises(JoinStateError, match="window_ms"):
        JoinState(tmp_path / "j.sqlite", window_ms=60_000)


def test_regressor_predictions_join_to_mae(state: JoinState) -> None:
    state.apply(
        [
            Prediction("r1", 3, T0, 10.0, task="regression"),
            Prediction("r2", 3, T0, 4.0, task="regression"),
        ],
        [Label("r1", 12.0, T0), Label("r2", 4.0, T0)],
        {},
    )
    metrics = state.cumulative(3).metrics()
    assert metrics["mae"] == 1.0 and metrics["rmse"] == pytest.approx(2**0.5)


def test_joined_marks_survive_a_reopen_and_expire_with_the_ttl(tmp_path: Path) -> None:
    path = tmp_path / "join.sqlite"
    first = JoinState(path)
    first.apply([pred(1, at=T0), pred(2, at=T0 + DAY)], [lab(1), lab(2, at=T0 + DAY)], {})
    first.close()
    again = JoinState(path)
    assert len(again.joined_ids) == 2
    again.apply([], [lab(1), lab(2, at=T0 + DAY)], {})
    assert again.counters()["duplicate_labels"] == 2
    again.expire(T0 + 7 * DAY + 1)
    assert len(again.joined_ids) == 1
