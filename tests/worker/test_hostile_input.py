"""Hostile input through a supervised worker process on a real broker, both transports: every
good event interleaved with it is scored, every bad one is dead-lettered with its stage, an
oversized event (2 MB) and an oversized prediction (a 1.5 MB passthrough field) are dead
letters cut to fit, and the child process never restarts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter

import pytest
from kafka import KafkaProducer

from streamscore import jsonio
from streamscore.kafka_admin import client_kwargs
from tests.kafka_helpers import produce, produce_json, read, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(400)]

MIB = 1_048_576


def hostile(demo_set) -> list[tuple[object, str]]:
    """``(value, expected dead-letter stage)``: what no record may do is stop its partition."""
    e = demo_set.event
    return [
        (b"\xff{not json", "decode"),
        (b'{"mean_radius": NaN, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "decode"),
        (b"[1, 2]", "decode"),
        (json.dumps(e(1, mean_radius=10**400, note=float("nan"))).encode(), "schema"),
        (jsonio.dumps(e(2, mean_area="big")), "schema"),
        (json.dumps(e(3, mean_texture=float("nan"))).encode(), "schema"),
        (jsonio.dumps(e(4))[:-1] + b', "mean_radius": null}', "schema"),  # duplicate key
        (json.dumps(e(5, label=10**30, note=float("nan"))).encode(), "encode"),
        (b"{" + b"x" * (2 * MIB), "decode"),  # 2 MB, over max_message_bytes
        (jsonio.dumps(e(6, label="y" * (3 * MIB // 2))), "publish"),  # its prediction too
    ]


def tombstones(kafka, n: int) -> list[tuple[int, int]]:
    """``n`` keyed null values (a client sends no null without a key)."""
    producer = KafkaProducer(**client_kwargs(kafka))
    try:
        futures = [producer.send(kafka.input_topic, None, key=f"t-{i}".encode()) for i in range(n)]
        producer.flush()
        return [(m.partition, m.offset) for m in (f.get(timeout=30) for f in futures)]
    finally:
        producer.close()


def _accept_large_inputs(kafka, topic: str, limit: int) -> None:
    """Apache Kafka refuses records over 1 MiB by default (``max.message.bytes``); a cluster
    whose producers send larger events raises it on their topic, as done here. (Tansu has no
    such limit.)"""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(**client_kwargs(kafka))
    try:
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(limit)})]
        )
    finally:
        admin.close()


@pytest.mark.parametrize("transport", ["kafka-python", "confluent-kafka"])
def test_hostile_mix_is_dead_lettered_good_neighbours_scored_no_restart(
    config_factory, register, demo_set, transport, broker_engine
):
    cfg = config_factory(
        kafka={"transport": transport},
        worker={"passthrough": ["label"], "max_partition_fetch_bytes": 4 * MIB},
    )
    if broker_engine != "tansu":
        _accept_large_inputs(cfg.kafka, cfg.kafka.input_topic, 4 * MIB)
    register()
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "streamscore", "--config", str(cfg.source), "worker", "-n", "1"]
    )
    state_file = cfg.worker.log_dir / "supervisor.json"
    try:
        wait_until(state_file.exists, 30, "the supervisor to start its child")
        first_pid = jsonio.loads(state_file.read_bytes())["children"]["0"]["pid"]
        produce(cfg.kafka, [demo_set.event(0, id="warm-up")])
        read(cfg.kafka, cfg.kafka.output_topic, expected=1, timeout_s=120)
        bad = hostile(demo_set)
        values: list[object] = []
        stages: list[str | None] = []
        good: set[str] = set()
        for round_ in range(3):
            for i, (value, stage) in enumerate(bad):
                event = demo_set.event(i, id=f"g-{round_}-{i}")
                values += [event, value]
                stages += [None, stage]
                good.add(event["id"])
        sent = produce_json(
            cfg.kafka, cfg.kafka.input_topic, values, key_field="id", max_request_size=4 * MIB
        )
        expected = {where: stage for where, stage in zip(sent, stages, strict=True) if stage}
        expected |= {where: "decode" for where in tombstones(cfg.kafka, 3)}
        outputs = read(cfg.kafka, cfg.kafka.output_topic, expected=len(good) + 1, timeout_s=120)
        dead = read(cfg.kafka, cfg.kafka.dead_letter_topic, expected=len(expected), timeout_s=60)
        inputs = read(cfg.kafka, cfg.kafka.input_topic, expected=len(values) + 4, timeout_s=60)
        state = jsonio.loads(state_file.read_bytes())["children"]["0"]
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
    scored = Counter(r.value["id"] for r in outputs if r.value)
    assert set(scored) == good | {"warm-up"}, f"not scored: {sorted(good - set(scored))[:5]}"
    assert max(scored.values()) == 1
    got = {}
    for record in dead:
        h = record.headers
        where = (int(h["streamscore.source.partition"]), int(h["streamscore.source.offset"]))
        assert where not in got, f"two dead letters for {where}"
        got[where] = h["streamscore.error.stage"]
        assert len(record.raw) <= MIB
        if h.get("streamscore.value.truncated") == "true":
            assert int(h["streamscore.value.length"]) > MIB
    assert got == expected
    truncated = Counter(
        r.headers["streamscore.error.stage"]
        for r in dead
        if r.headers.get("streamscore.value.truncated") == "true"
    )
    assert truncated == {"decode": 3, "publish": 3}  # the 2 MB event, the 1.5 MB prediction
    assert sum(r.headers.get("streamscore.value.null") == "true" for r in dead) == 3
    assert state["restarts"] == 0 and state["pid"] == first_pid, "the worker restarted"
    # Good neighbours are not held up: each good event's prediction was written within a
    # second of the event itself (Kafka timestamps), hostile records and all.
    sent_at = {(r.partition, r.offset): r.timestamp for r in inputs}
    delays = sorted(
        r.timestamp
        - sent_at[
            int(r.headers["streamscore.source.partition"]),
            int(r.headers["streamscore.source.offset"]),
        ]
        for r in outputs
        if r.value and r.value["id"] in good
    )
    assert len(delays) == len(good)
    assert delays[-1] <= 1000, (
        f"good events delayed up to {delays[-1]} ms (median {delays[len(delays) // 2]})"
    )
