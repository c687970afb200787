"""Shadow and canary scoring of a batch (no broker): sampling by id, the shadow's records and
comparison, its failures and budget, the canary's share (worker.sampling, worker.shadow)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from streamscore import jsonio
from streamscore.wire import headers_dict, shadow_rows
from tests.worker.conftest import FailsOnBatches, SlowPerRow
from worker.processor import BatchProcessor, Canary, Destinations, ServingModel
from worker.sampling import id_share, in_canary, in_shadow
from worker.shadow import PROBE_ROWS, ShadowMetrics, ShadowScorer
from worker.validation import ValidationPolicy


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


DEST = Destinations("out", "dlq", group="g", worker_id="w-1")


def batch_of(demo_set, n, start=0):
    return [
        Rec("in", 0, i, 1_700_000_000_000 + i, f"e-{i}".encode(), jsonio.dumps(demo_set.event(i)))
        for i in range(start, start + n)
    ]


def serving(model_store, version, alias="production"):
    return ServingModel(
        model_store.load(version), ValidationPolicy(), alias=alias, seq=1, allowed_extra=("id",)
    )


def scorer(fraction=1.0, budget_ms=10_000, clock=None):
    metrics = ShadowMetrics(CollectorRegistry())
    kwargs = {"clock": clock} if clock is not None else {}
    return ShadowScorer("shadow", fraction, budget_ms, metrics, **kwargs)


def rows(records) -> list[dict]:
    """The shadow's records as one prediction per event (:func:`streamscore.wire.shadow_rows`)."""
    return [row for r in records for row in shadow_rows(jsonio.loads(r.value))]


def sample_value(metrics: ShadowMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(f"streamscore_shadow_{name}", labels)


@pytest.fixture
def two_versions(register, model_store):
    """v1 in production, v2 (a weaker regularisation) as the candidate."""
    register(C=1.0)
    register(C=0.001, promote=False)
    return serving(model_store, 1), serving(model_store, 2, alias="candidate")


# --------------------------------------------------------------------------- sampling


def test_id_share_is_stable_and_uniform():
    ids = [f"id-{i}" for i in range(20_000)]
    shares = [id_share(i) for i in ids]
    assert shares == [id_share(i) for i in ids]  # same id, same share, every time
    assert all(0.0 <= s < 1.0 for s in shares)
    # each tenth of [0, 1) holds about a tenth of the ids (binomial, 6 standard deviations)
    sd = math.sqrt(20_000 * 0.1 * 0.9)
    for decile in range(10):
        inside = sum(1 for s in shares if decile / 10 <= s < (decile + 1) / 10)
        assert abs(inside - 2000) < 6 * sd, (decile, inside)


def test_id_share_of_a_number_is_that_of_its_text():
    assert id_share(12345) == id_share("12345")


def test_canary_share_is_within_statistical_bounds_and_disjoint_from_the_shadow():
    n, fraction = 50_000, 0.05
    ids = [f"ev-{i}" for i in range(n)]
    canary = [i for i in ids if in_canary(i, fraction)]
    sd = math.sqrt(n * fraction * (1 - fraction))
    assert abs(len(canary) - n * fraction) < 5 * sd
    assert not any(in_shadow(i, 0.9) for i in canary)  # fractions summing <= 1: disjoint
    assert not any(in_canary(i, 0.0) for i in ids[:1000])
    assert all(in_canary(i, 1.0) and in_shadow(i, 1.0) for i in ids[:1000])


# --------------------------------------------------------------------------- the shadow


def test_shadow_scores_the_sampled_ids_and_leaves_production_records_as_they_were(
    two_versions, demo_set
):
    production, shadow = two_versions
    batch = batch_of(demo_set, 200)
    alone = BatchProcessor(DEST).process(batch, production)
    result = BatchProcessor(DEST).process(batch, production)
    before = [(r.topic, r.key, jsonio.loads(r.value)["prediction"]) for r in result.records]
    shadowing = scorer(fraction=0.3)
    records = shadowing.score(shadow, production, result)

    assert [(r.topic, r.key, jsonio.loads(r.value)["prediction"]) for r in alone.records] == before
    assert {r.topic for r in records} == {"shadow"}
    assert len(records) == 1  # the batch's shadow predictions, by column, in one record
    assert all(headers_dict(r.headers)["streamscore.model.version"] == "2" for r in records)
    assert all(r.key is None for r in records)
    ids = [row["id"] for row in rows(records)]
    assert ids == [f"e-{i}" for i in range(200) if in_shadow(f"e-{i}", 0.3)]
    assert 30 < len(ids) < 90
    by_id = {jsonio.loads(r.value)["id"]: jsonio.loads(r.value) for r in result.records}
    for body in rows(records):
        assert body["model"] == {"name": "demo", "version": 2}
        published = by_id[body["id"]]  # production's prediction of the event, as published
        assert body["production"]["model"] == published["model"]
        assert body["production"]["prediction"] == published["prediction"]
        assert body["production"]["probabilities"] == published["probabilities"]
        expected = shadow.loaded.model.predict_proba(
            [[demo_set.event(int(body["id"][2:]))[n] for n in demo_set.names]]
        )[0]
        assert body["probabilities"]["1"] == pytest.approx(expected[1])


def test_shadow_records_are_split_to_fit_max_message_bytes_and_lose_no_event(
    two_versions, demo_set
):
    production, shadow = two_versions
    result = BatchProcessor(DEST).process(batch_of(demo_set, 300), production)
    metrics = ShadowMetrics(CollectorRegistry())
    small = ShadowScorer("shadow", 1.0, 10_000, metrics, max_message_bytes=8 * 1024)
    records = small.score(shadow, production, result)
    assert len(records) > 1
    assert all(len(r.value) + 1024 <= 8 * 1024 for r in records)
    assert sorted(row["id"] for row in rows(records)) == sorted(f"e-{i}" for i in range(300))
    assert small.tallies[(1, 2)].scored == 300 and small.skipped == {}


def test_shadow_record_of_one_event_too_large_for_any_record_is_skipped_and_counted(
    register, model_store, demo_set
):
    register()
    register(promote=False)
    production, shadow = serving(model_store, 1), serving(model_store, 2, "candidate")
    big = [
        Rec("in", 0, i, 1_700_000_000_000 + i, None, jsonio.dumps(demo_set.event(i, id=ident)))
        for i, ident in enumerate(["small", "x" * 3000, "also-small"])
    ]
    result = BatchProcessor(DEST).process(big, production)
    metrics = ShadowMetrics(CollectorRegistry())
    small = ShadowScorer("shadow", 1.0, 10_000, metrics, max_message_bytes=3 * 1024)
    records = small.score(shadow, production, result)
    assert sorted(row["id"] for row in rows(records)) == ["also-small", "small"]
    assert small.skipped == {"too_large": 1}
    assert sample_value(metrics, "skipped_total", shadow_version="2", reason="too_large") == 1


def test_two_workers_shadow_the_same_ids(two_versions, demo_set):
    production, shadow = two_versions
    picked = []
    for _worker in range(2):
        result = BatchProcessor(DEST).process(batch_of(demo_set, 300), production)
        records = scorer(fraction=0.25).score(shadow, production, result)
        picked.append([row["id"] for row in rows(records)])
    assert picked[0] == picked[1] and picked[0]


def test_shadow_compares_with_production_by_version_pair(two_versions, demo_set):
    production, shadow = two_versions
    result = BatchProcessor(DEST).process(batch_of(demo_set, 300), production)
    shadowing = scorer()
    records = shadowing.score(shadow, production, result)
    tally = shadowing.tallies[(1, 2)]
    ours = {jsonio.loads(r.value)["id"]: jsonio.loads(r.value) for r in result.records}
    theirs = rows(records)
    agreed = sum(1 for t in theirs if t["prediction"] == ours[t["id"]]["prediction"])
    diff = sum(
        abs(t["probabilities"]["1"] - ours[t["id"]]["probabilities"]["1"]) for t in theirs
    ) / len(theirs)
    assert tally.scored == 300 and tally.agreed == agreed
    assert 0 < agreed < 300  # two different models: some disagreement, mostly agreement
    assert tally.probability_diff == pytest.approx(diff)
    pair = {"production_version": "1", "shadow_version": "2"}
    assert sample_value(shadowing.metrics, "agreement", **pair) == pytest.approx(agreed / 300)
    assert sample_value(shadowing.metrics, "probability_diff", **pair) == pytest.approx(diff)
    assert sample_value(shadowing.metrics, "scored_total", **pair) == 300


def test_shadow_of_the_same_schema_reuses_productions_matrix(two_versions, demo_set):
    production, shadow = two_versions
    result = BatchProcessor(DEST).process(batch_of(demo_set, 50), production)
    calls = []
    shadow.builder.build = lambda events: calls.append(events)  # type: ignore[method-assign]
    records = scorer().score(shadow, production, result)
    assert len(rows(records)) == 50 and calls == []


def test_failing_shadow_is_skipped_and_counted_and_production_is_untouched(
    register, model_store, demo_set
):
    register()
    register(promote=False, wrap=FailsOnBatches)
    production, shadow = serving(model_store, 1), serving(model_store, 2, "candidate")
    result = BatchProcessor(DEST).process(batch_of(demo_set, 100), production)
    published = list(result.records)
    shadowing = scorer()
    assert shadowing.score(shadow, production, result) == []
    assert result.records == published and result.scored == 100
    skipped = sample_value(shadowing.metrics, "skipped_total", shadow_version="2", reason="failed")
    assert skipped == 100 and shadowing.skipped == {"failed": 100}


def test_shadow_over_its_budget_is_skipped_and_counted(register, model_store, demo_set):
    register()
    register(promote=False, wrap=lambda m: SlowPerRow(m, 0.002))  # 2 ms a row
    production, shadow = serving(model_store, 1), serving(model_store, 2, "candidate")
    shadowing = scorer(budget_ms=100)
    # first batch: a probe of PROBE_ROWS (64 ms), then what fits in the remaining 36 ms
    result = BatchProcessor(DEST).process(batch_of(demo_set, 400), production)
    first = rows(shadowing.score(shadow, production, result))
    assert PROBE_ROWS <= len(first) <= PROBE_ROWS + 20
    # next batches: about 50 rows fit in 100 ms; the rest of the 400 is skipped, counted
    result = BatchProcessor(DEST).process(batch_of(demo_set, 400), production)
    second = rows(shadowing.score(shadow, production, result))
    assert 25 <= len(second) <= 55
    skipped = sample_value(shadowing.metrics, "skipped_total", shadow_version="2", reason="budget")
    assert skipped == 800 - len(first) - len(second)
    assert result.scored == 400  # production's output is the whole batch all the same


def test_shadow_of_the_production_version_does_nothing(two_versions, demo_set):
    production, _ = two_versions
    result = BatchProcessor(DEST).process(batch_of(demo_set, 20), production)
    assert scorer().score(production, production, result) == []


# --------------------------------------------------------------------------- the canary


def test_canary_scores_its_share_of_ids_on_the_output_topic_with_its_version(
    two_versions, demo_set
):
    production, candidate = two_versions
    batch = batch_of(demo_set, 400)
    result = BatchProcessor(DEST).process(batch, production, Canary(candidate, 0.2))
    versions = {}
    for record in result.records:
        body = jsonio.loads(record.value)
        assert record.topic == "out"
        versions[body["id"]] = body["model"]["version"]
        assert headers_dict(record.headers)["streamscore.model.version"] == str(
            body["model"]["version"]
        )
    assert len(versions) == 400 and result.scored == 400
    assert versions == {f"e-{i}": 2 if in_canary(f"e-{i}", 0.2) else 1 for i in range(400)}
    assert len(result.canary_predictions) == sum(1 for v in versions.values() if v == 2)
    assert len(result.predictions) == sum(1 for v in versions.values() if v == 1)
    # a second worker (or the same one later) sends every id to the same model
    again = BatchProcessor(DEST).process(batch, production, Canary(candidate, 0.2))
    assert [jsonio.loads(r.value)["model"] for r in again.records] == [
        jsonio.loads(r.value)["model"] for r in result.records
    ]


def test_canary_dead_letters_carry_the_canarys_version(two_versions, demo_set):
    production, candidate = two_versions
    bad = [i for i in range(200) if in_canary(f"e-{i}", 0.5)][:1]
    events = []
    for i in range(200):
        event = demo_set.event(i)
        if i in bad:
            event["mean_radius"] = "wide"
        events.append(Rec("in", 0, i, 0, None, jsonio.dumps(event)))
    result = BatchProcessor(DEST).process(events, production, Canary(candidate, 0.5))
    [dead] = [r for r in result.records if r.topic == "dlq"]
    assert headers_dict(dead.headers)["streamscore.model.version"] == "2"


# --------------------------------------------------------------------------- the fleet view


def test_fleet_sums_shadows_by_version_pair_weighted_by_events():
    from app.status_cli import shadow_line
    from worker.fleet_view import shadow_totals

    def member(scored, agreement, skipped):
        shadow = {
            "alias": "candidate",
            "version": 2,
            "production_version": 1,
            "scored": scored,
            "agreement": agreement,
            "probability_diff": 0.02,
            "mae": None,
            "skipped": skipped,
        }
        return {"candidates": {"shadow": shadow}}

    [total] = shadow_totals([member(300, 0.9, {"budget": 5}), member(100, 0.5, {"failed": 1})])
    assert total["scored"] == 400 and total["agreement"] == pytest.approx(0.8)
    assert total["probability_diff"] == pytest.approx(0.02) and total["mae"] is None
    assert total["skipped"] == {"budget": 5, "failed": 1}
    assert shadow_line(total) == (
        "shadow candidate v2 beside v1: 400 scored, agreement 80.0%, mean |probability "
        "difference| 0.0200, skipped budget 5, failed 1 (live metrics: streamscore models show 2)"
    )
    assert shadow_totals([{"candidates": {}}, {}]) == []


def test_status_serving_column_names_the_canary_and_its_share_and_the_shadow():
    from app.status_cli import _serving

    record = {
        "serving": {"production": 6, "canary": 7},
        "candidates": {
            "canary": {"alias": "canary", "version": 7, "fraction": 0.05},
            "shadow": {"alias": "candidate", "version": 8},
        },
    }
    assert _serving(record) == "v6, canary v7 5%, shadow v8"
    assert _serving({"serving": {"production": 6}}) == "v6"
