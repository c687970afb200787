"""The monitor judges a shadow on the same ids as production and a canary beside it, on the
real broker; the optional rules promote the shadow or end the canary."""

from __future__ import annotations

import time
from typing import Any

import pytest

from model_store import ModelStore
from streamscore.kafka_admin import ensure_topics
from tests.kafka_helpers import produce_json, read, wait_until
from tests.monitor.conftest import register

pytestmark = pytest.mark.broker


def _body(i: int, version: int, p1: float, at_ms: int) -> dict[str, Any]:
    return {
        "id": f"p-{i}",
        "prediction": int(p1 >= 0.5),
        "probabilities": {"0": round(1 - p1, 4), "1": p1},
        "model": {"name": "demo", "version": version},
        "scored_at": at_ms,
    }


def _shadow_record(ids: list[int], shadow: int, production: int, at_ms: int) -> dict[str, Any]:
    """As a worker writes a batch of them, by column: the shadow's predictions (right: label 1)
    with production's (wrong) of the same events."""

    def side(version: int, p1: float) -> dict[str, Any]:
        return {
            "model": {"name": "demo", "version": version},
            "predictions": [int(p1 >= 0.5)] * len(ids),
            "classes": ["0", "1"],
            "probabilities": [[round(1 - p1, 4), p1]] * len(ids),
        }

    return {
        **side(shadow, 0.9),
        "scored_at": at_ms,
        "ids": [f"p-{i}" for i in ids],
        "production": side(production, 0.2),
    }


def _one_event_shadow_record(i: int, shadow: int, production: int, at_ms: int) -> dict[str, Any]:
    """As workers wrote them before the columns: one event per record."""
    body = _body(i, shadow, 0.9, at_ms)
    body["production"] = _body(i, production, 0.2, at_ms)
    return body


def _closed_windows_start() -> int:
    return int(time.time() * 1000) // 1000 * 1000 - 10_000  # ten closed 1-second windows


def test_monitor_compares_the_shadow_with_production_on_the_same_ids_and_promotes_it(
    monitor_config, run_monitor, cancer
):
    cfg = monitor_config(
        {"worker": {"shadow_alias": "candidate"}},
        window_s=1,
        min_labels_per_window=20,
        auto_promote=True,
    )
    k = cfg.kafka
    store, production, shadow = _shadowed_stream(cfg, cancer)
    service = run_monitor(cfg)

    def promoted() -> bool:
        shown = service.snapshot().get("candidates", {}).get("shadow", {})
        return (shown.get("last_action") or {}).get("action") == "promote"

    wait_until(promoted, 30, "the shadow promoted")
    assert store.alias_state("production")[0] == shadow.version
    summary = service.snapshot()["candidates"]["shadow"]
    ours = summary["production_on_shadow_ids"][str(production.version)]
    theirs = summary["shadow"][str(shadow.version)]
    assert theirs["labelled"] == ours["labelled"] == 200  # the same 200 ids
    assert theirs["accuracy"] == 1.0 and ours["accuracy"] == 0.0
    decision = summary["last_action"]
    assert decision["reason"].startswith(
        f"shadow v{shadow.version} vs production v{production.version}: accuracy 1 vs 0"
    )
    assert decision["numbers"]["labels_per_window"] == [20, 20, 20]
    published = [
        r.value for r in read(k, k.quality_topic, expected=3) if r.value["type"] == "decision"
    ]
    assert any(d["action"] == "promote" for d in published)


def _shadowed_stream(cfg, cancer) -> tuple[ModelStore, Any, Any]:
    """Production scored 400 ids (wrong), the shadow the half it sampled (right), all labelled."""
    k = cfg.kafka
    ensure_topics(k, [k.labels_topic, k.shadow_topic])
    store = ModelStore.from_config(cfg)
    production = register(store, cancer)
    store.promote(production.version)
    shadow = register(store, cancer)
    store.promote(shadow.version, "candidate")
    start = _closed_windows_start()
    produce_json(
        k,
        k.output_topic,
        [_body(i, production.version, 0.2, start + i * 25) for i in range(400)],
        key_field="id",
    )
    # the shadow sampled the even ids: batches of ten, half a second each, and the last
    # second's as an older worker wrote them (one event per record)
    batches = [
        _shadow_record(
            list(range(i, i + 20, 2)), shadow.version, production.version, start + i * 25
        )
        for i in range(0, 360, 20)
    ]
    singles = [
        _one_event_shadow_record(i, shadow.version, production.version, start + i * 25)
        for i in range(360, 400, 2)
    ]
    produce_json(k, k.shadow_topic, [*batches, *singles])
    produce_json(k, k.labels_topic, [{"id": f"p-{i}", "label": 1} for i in range(400)])
    return store, production, shadow


def _candidate_records(k, role: str) -> list[dict[str, Any]]:
    return [
        r.value
        for r in read(k, k.quality_topic, expected=10, timeout_s=5)
        if r.value["type"] == "candidate" and r.value["role"] == role
    ]


def test_monitor_publishes_the_shadows_live_metrics_next_to_productions_on_the_same_ids(
    monitor_config, run_monitor, cancer
):
    cfg = monitor_config(
        {"worker": {"shadow_alias": "candidate"}}, window_s=1, min_labels_per_window=20
    )
    k = cfg.kafka
    _, production, shadow = _shadowed_stream(cfg, cancer)
    run_monitor(cfg)

    def labelled() -> list[dict[str, Any]]:
        return [r for r in _candidate_records(k, "shadow") if r["cumulative"]["labelled"] == 200]

    wait_until(lambda: bool(labelled()), 30, "the shadow's candidate record with 200 labels")
    record = labelled()[-1]
    assert record["model"]["version"] == shadow.version
    assert record["production_version"] == production.version
    assert record["alias"] == "candidate"
    assert record["cumulative"]["accuracy"] == 1.0
    assert record["production_cumulative"]["accuracy"] == 0.0  # production on the same ids
    assert record["production_cumulative"]["labelled"] == 200


@pytest.mark.parametrize("auto_end", [False, True])
def test_monitor_reports_a_worse_canary_and_ends_it_only_when_asked(
    monitor_config, run_monitor, cancer, auto_end
):
    cfg = monitor_config(
        {"worker": {"canary_alias": "canary", "canary_fraction": 0.5}},
        window_s=1,
        min_labels_per_window=20,
        auto_end_canary=auto_end,
    )
    k = cfg.kafka
    ensure_topics(k, [k.labels_topic])
    store = ModelStore.from_config(cfg)
    production = register(store, cancer)
    store.promote(production.version)
    canary = register(store, cancer, bad=True)
    store.promote(canary.version, "canary")
    start = _closed_windows_start()
    bodies = [
        _body(i, canary.version, 0.2, start + i * 25)  # the canary's half: wrong
        if i % 2
        else _body(i, production.version, 0.9, start + i * 25)  # production's: right
        for i in range(400)
    ]
    produce_json(k, k.output_topic, bodies, key_field="id")
    produce_json(k, k.labels_topic, [{"id": f"p-{i}", "label": 1} for i in range(400)])
    service = run_monitor(cfg)

    def canary_decision() -> dict[str, Any]:
        part = service.snapshot().get("candidates", {}).get("canary", {})
        return part.get("last_decision") or {}

    if not auto_end:
        wait_until(lambda: canary_decision().get("action") == "report", 30, "a report")
        decision = canary_decision()
        assert decision["reason"].endswith("worse in every window (auto_end_canary off)")
        assert decision["numbers"]["candidate_per_window"] == [0.0, 0.0, 0.0]
        assert decision["numbers"]["production_per_window"] == [1.0, 1.0, 1.0]
        time.sleep(1)
        assert store.alias_state("canary")[0] == canary.version  # not moved
        [*_, record] = _candidate_records(k, "canary")  # shown beside production's
        assert (record["model"]["version"], record["production_version"]) == (
            canary.version,
            production.version,
        )
        assert record["cumulative"]["accuracy"] == 0.0
        assert record["production_cumulative"]["accuracy"] == 1.0
    else:
        wait_until(
            lambda: store.alias_state("canary")[0] == production.version,
            30,
            "the canary alias pointed at production (the canary ended)",
        )
    assert store.alias_state("production")[0] == production.version
