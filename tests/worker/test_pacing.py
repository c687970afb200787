"""BatchPacer: batch caps from each model version's measured cost per row."""

from __future__ import annotations

from worker.pacing import PROBE_RECORDS, BatchPacer


def test_first_batch_of_a_version_is_a_probe_then_the_cap_fits_the_budget():
    pacer = BatchPacer(max_batch_records=1000, budget_s=3.3)
    assert pacer.cap("1") == PROBE_RECORDS
    pacer.observe("1", PROBE_RECORDS, PROBE_RECORDS * 0.012)  # 12 ms per row
    assert pacer.cap("1") == 275  # 3.3 s / 12 ms
    assert pacer.cap("2") == PROBE_RECORDS  # measured per version


def test_a_fast_model_gets_full_batches_and_the_mean_follows_new_measurements():
    pacer = BatchPacer(max_batch_records=1000, budget_s=100.0)
    pacer.observe("1", 32, 0.010)
    assert pacer.cap("1") == 1000
    slow = BatchPacer(max_batch_records=1000, budget_s=1.0)
    slow.observe("1", 10, 0.010)  # 1 ms per row: 1000
    for _ in range(20):
        slow.observe("1", 100, 1.0)  # then 10 ms per row
    assert 95 <= slow.cap("1") <= 110
    slow.observe("1", 1, 60.0)  # a single very slow row: never below one record
    assert slow.cap("1") >= 1


def test_a_slowdown_is_believed_at_once_and_a_speedup_gradually():
    pacer = BatchPacer(max_batch_records=1000, budget_s=3.3)
    pacer.observe("1", 1000, 0.05)  # 50 us a row: full batches
    assert pacer.cap("1") == 1000
    pacer.observe("1", 1000, 30.0)  # then 30 ms a row: the next batch must fit at once
    assert pacer.cap("1") == 110  # 3.3 s / 30 ms, not an average that would still overrun
    pacer.observe("1", 110, 110 * 0.010)  # faster again: 10 ms a row, averaged in
    assert 110 < pacer.cap("1") < 330
