"""The candidate rules (monitor.candidate.judge): promote a shadow/canary that beats production,
end a canary that is worse; off by default, every decision with its numbers."""

from __future__ import annotations

from monitor.candidate import (
    CANARY,
    END_CANARY,
    PROMOTE,
    SHADOW,
    CandidateInput,
    CandidatePolicy,
    judge,
)
from monitor.rollback import HOLD, REPORT, WindowQuality

HOUR = 3_600_000


def windows(values, metric="accuracy", labelled=1000, predictions=1000):
    return [
        WindowQuality(i * HOUR, (i + 1) * HOUR, predictions, labelled, {metric: v})
        for i, v in enumerate(values)
    ]


def given(cand, prod, role=SHADOW, task="classification", now=10 * HOUR, **kw):
    metric = "mae" if task == "regression" else "accuracy"
    return CandidateInput(
        role=role,
        version=2,
        production_version=1,
        task=task,
        candidate_windows=windows(cand, metric, **kw),
        production_windows=windows(prod, metric),
        now_ms=now,
    )


POLICY = CandidatePolicy(min_labels_per_window=500, consecutive_windows=3)


def test_rules_are_off_by_default_a_better_candidate_is_only_reported():
    decision = judge(CandidatePolicy(), given([0.95, 0.96, 0.95], [0.90, 0.91, 0.90]))
    assert decision.action == REPORT
    assert "better in every window (auto_promote off)" in decision.reason
    assert decision.numbers["candidate_per_window"] == [0.95, 0.96, 0.95]
    assert decision.numbers["production_per_window"] == [0.90, 0.91, 0.90]


def test_promote_when_better_by_the_margin_in_every_window():
    policy = CandidatePolicy(auto_promote=True, promote_margin=0.01)
    decision = judge(policy, given([0.95, 0.96, 0.95], [0.90, 0.91, 0.90]))
    assert decision.action == PROMOTE and decision.version == 2 and decision.target == 1
    assert "accuracy 0.9533 vs 0.9033 over 3 windows of 3,000 labels" in decision.reason


def test_one_window_not_better_by_the_margin_holds():
    policy = CandidatePolicy(auto_promote=True, promote_margin=0.01)
    decision = judge(policy, given([0.95, 0.905, 0.95], [0.90, 0.90, 0.90]))
    assert decision.action == HOLD and "better in 2 of 3 windows" in decision.reason


def test_not_enough_labels_or_windows_holds():
    policy = CandidatePolicy(auto_promote=True)
    few = judge(policy, given([0.99] * 3, [0.5] * 3, labelled=100))
    assert few.action == HOLD and "100 labelled predictions, 500 are needed" in few.reason
    early = judge(policy, given([0.99] * 3, [0.5] * 3, now=2 * HOUR))
    assert early.action == HOLD and "2 closed window(s) of both, 3 are needed" in early.reason
    thin = judge(policy, given([0.99] * 3, [0.5] * 3, predictions=4000, labelled=1000))
    assert thin.action == HOLD and "25% of its predictions labelled" in thin.reason


def test_regressor_is_judged_on_mae_lower_by_a_relative_margin():
    policy = CandidatePolicy(auto_promote=True, promote_margin=0.05)
    better = judge(policy, given([9.0, 9.2, 9.1], [10.0, 10.0, 10.0], task="regression"))
    assert better.action == PROMOTE and better.numbers["metric"] == "mae"
    close = judge(policy, given([9.8, 9.7, 9.9], [10.0, 10.0, 10.0], task="regression"))
    assert close.action == HOLD


def test_worse_canary_is_ended_only_with_auto_end_canary():
    bad = ([0.85, 0.84, 0.86], [0.90, 0.91, 0.90])
    reported = judge(CandidatePolicy(), given(*bad, role=CANARY))
    assert reported.action == REPORT and "auto_end_canary off" in reported.reason
    ended = judge(CandidatePolicy(auto_end_canary=True), given(*bad, role=CANARY))
    assert ended.action == END_CANARY and ended.numbers["end_margin"] == 0.02
    # a shadow is never "ended": it publishes nothing production serves
    assert judge(CandidatePolicy(auto_end_canary=True), given(*bad)).action == HOLD


def test_canary_worse_in_two_windows_of_three_holds():
    decision = judge(
        CandidatePolicy(auto_end_canary=True),
        given([0.85, 0.90, 0.86], [0.90, 0.90, 0.90], role=CANARY),
    )
    assert decision.action == HOLD and "worse in 2 of 3 windows" in decision.reason


def test_only_windows_where_both_scored_count():
    cand = windows([0.99, 0.99, 0.99, 0.99])
    prod = windows([0.5, 0.5, 0.5, 0.5])[1:]  # production's first window is missing
    decision = judge(
        CandidatePolicy(auto_promote=True),
        CandidateInput(SHADOW, 2, 1, "classification", cand, prod, now_ms=10 * HOUR),
    )
    assert decision.action == PROMOTE and decision.numbers["windows"] == [HOUR, 2 * HOUR, 3 * HOUR]
