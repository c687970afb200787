"""The automatic rollback rule and each of its guards."""

from __future__ import annotations

import dataclasses

from monitor.rollback import (
    HOLD,
    REPORT,
    ROLLBACK,
    RollbackInput,
    RollbackPolicy,
    WindowQuality,
    decide,
)

HOUR = 3_600_000
POLICY = RollbackPolicy()


def window(
    i: int, accuracy: float, labelled: int = 1200, predictions: int = 1500, log_loss: float = 0.15
) -> WindowQuality:
    return WindowQuality(
        start_ms=i * HOUR,
        end_ms=(i + 1) * HOUR,
        predictions=predictions,
        labelled=labelled,
        metrics={"accuracy": accuracy, "log_loss": log_loss},
    )


def given(*windows: WindowQuality, **changes: object) -> RollbackInput:
    base = RollbackInput(
        version=5,
        task="classification",
        previous_version=4,
        windows=windows,
        held_out={"accuracy": 0.95, "log_loss": 0.15},
        previous_live={"accuracy": 0.93, "log_loss": 0.2},
        previous_labelled=10_000,
        now_ms=10 * HOUR,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_rollback_when_three_windows_are_worse_than_the_previous_version() -> None:
    decision = decide(POLICY, given(window(1, 0.81), window(2, 0.80), window(3, 0.82)))
    assert decision.action == ROLLBACK and decision.target == 4
    assert decision.reason == "live accuracy 0.81 vs 0.93 of v4 over 3 windows of 3,600 labels"
    assert decision.numbers["labels_per_window"] == [1200, 1200, 1200]


def test_rollback_against_the_held_out_metric_without_previous_live_labels() -> None:
    decision = decide(
        POLICY,
        given(window(1, 0.90), window(2, 0.90), window(3, 0.90), previous_labelled=0),
    )
    assert decision.action == ROLLBACK
    assert "vs 0.95 held-out of v5" in decision.reason


def test_rollback_on_log_loss_ten_percent_worse() -> None:
    windows = [window(i, 0.93, log_loss=0.25) for i in (1, 2, 3)]
    decision = decide(POLICY, given(*windows))
    assert decision.action == ROLLBACK
    assert decision.reason.startswith("live log loss 0.25 vs 0.2 of v4")


def test_no_rollback_within_the_margin() -> None:
    windows = [window(i, 0.915, log_loss=0.215) for i in (1, 2, 3)]  # 0.015 and 7.5 % worse
    decision = decide(POLICY, given(*windows, held_out={}))
    assert decision.action == HOLD
    assert "0 of 3 windows worse" in decision.reason


def test_no_rollback_with_too_few_labels_in_a_window() -> None:
    decision = decide(POLICY, given(window(1, 0.5), window(2, 0.5, labelled=499), window(3, 0.5)))
    assert decision.action == HOLD
    assert "499 labelled predictions, 500 are needed" in decision.reason


def test_no_rollback_with_low_label_coverage() -> None:
    low = window(3, 0.5, labelled=600, predictions=1300)  # 46 %
    decision = decide(POLICY, given(window(1, 0.5), window(2, 0.5), low))
    assert decision.action == HOLD
    assert "46% of its 1,300 predictions labelled, 50% are needed" in decision.reason


def test_no_rollback_after_two_bad_windows_then_a_good_one() -> None:
    decision = decide(POLICY, given(window(1, 0.80), window(2, 0.80), window(3, 0.94)))
    assert decision.action == HOLD
    assert "2 of 3 windows worse" in decision.reason


def test_no_rollback_with_fewer_than_three_closed_windows() -> None:
    still_open = window(9, 0.5)  # ends at 10 h = now: closed; 10 h would still be open
    open_one = window(10, 0.5)
    decision = decide(POLICY, given(window(8, 0.5), still_open, open_one))
    assert decision.action == HOLD
    assert "2 closed window(s), 3 are needed" in decision.reason


def test_only_the_last_three_windows_count() -> None:
    decision = decide(
        POLICY, given(window(0, 0.99), window(1, 0.8), window(2, 0.8), window(3, 0.8))
    )
    assert decision.action == ROLLBACK


def test_auto_rollback_off_only_reports() -> None:
    policy = dataclasses.replace(POLICY, auto_rollback=False)
    decision = decide(policy, given(window(1, 0.8), window(2, 0.8), window(3, 0.8)))
    assert decision.action == REPORT
    assert decision.reason.endswith("(auto_rollback off)")


def test_at_most_one_automatic_rollback_per_version() -> None:
    bad = (window(1, 0.8), window(2, 0.8), window(3, 0.8))
    decision = decide(POLICY, given(*bad, rolled_back_versions=frozenset({5})))
    assert decision.action == HOLD and "once already" in decision.reason


def test_cool_down_after_an_automatic_rollback() -> None:
    bad = (window(1, 0.8), window(2, 0.8), window(3, 0.8))
    decision = decide(POLICY, given(*bad, last_rollback_ms=10 * HOUR - 60_000))
    assert decision.action == HOLD and "cool-down" in decision.reason
    later = decide(POLICY, given(*bad, last_rollback_ms=10 * HOUR - 2 * HOUR))
    assert later.action == ROLLBACK


def test_no_rollback_without_an_earlier_version() -> None:
    bad = (window(1, 0.8), window(2, 0.8), window(3, 0.8))
    decision = decide(POLICY, given(*bad, previous_version=None))
    assert decision.action == HOLD and "no earlier version" in decision.reason


def test_regressor_rolls_back_on_mae() -> None:
    windows = [WindowQuality(i * HOUR, (i + 1) * HOUR, 1000, 900, {"mae": 1.2}) for i in (1, 2, 3)]
    decision = decide(
        POLICY,
        given(*windows, task="regression", previous_live={"mae": 1.0}, held_out={"mae": 1.05}),
    )
    assert decision.action == ROLLBACK
    assert decision.reason == "live mae 1.2 vs 1 of v4 over 3 windows of 2,700 labels"


# Labels that come two windows late: at 10 h, the windows of 8 h and 9 h have almost none yet.
LATE = (window(8, 0.5, labelled=40), window(9, 0.5, labelled=0))


def test_labels_two_windows_late_delay_the_rule_without_stopping_it() -> None:
    bad = [window(i, 0.80) for i in range(3, 8)]
    decision = decide(POLICY, given(*bad, *LATE))
    assert decision.action == ROLLBACK
    assert decision.reason == "live accuracy 0.8 vs 0.93 of v4 over 3 windows of 3,600 labels"
    assert decision.numbers["windows"] == [5 * HOUR, 6 * HOUR, 7 * HOUR]
    assert decision.numbers["waiting_for_labels"] == [8 * HOUR, 9 * HOUR]


def test_labels_two_windows_late_hold_until_three_windows_have_them() -> None:
    decision = decide(POLICY, given(window(6, 0.80), window(7, 0.80), *LATE))
    assert decision.action == HOLD
    assert decision.reason == (
        "v5 has 2 closed window(s) with labels enough before the 2 newer one(s) still waiting "
        f"for labels (window {9 * HOUR} of v5 has 0 labelled predictions, 500 are needed); "
        "3 are needed"
    )
    # An hour later the window of 8 h has its labels: three windows are judged.
    matured = window(8, 0.80)
    later = decide(
        POLICY,
        given(
            window(6, 0.80),
            window(7, 0.80),
            matured,
            *LATE[1:],
            window(10, 0.5, labelled=0),
            now_ms=11 * HOUR,
        ),
    )
    assert later.action == ROLLBACK and later.numbers["windows"] == [6 * HOUR, 7 * HOUR, 8 * HOUR]


def test_labels_two_windows_late_two_bad_windows_then_a_good_one_is_no_rollback() -> None:
    decision = decide(POLICY, given(window(5, 0.80), window(6, 0.80), window(7, 0.94), *LATE))
    assert decision.action == HOLD
    assert "2 of 3 windows worse" in decision.reason


def test_a_thin_window_among_the_judged_ones_holds_even_with_late_labels() -> None:
    gap = window(6, 0.5, labelled=499)
    decision = decide(POLICY, given(window(4, 0.5), window(5, 0.5), gap, window(7, 0.5), *LATE))
    assert decision.action == HOLD
    assert "499 labelled predictions, 500 are needed" in decision.reason
