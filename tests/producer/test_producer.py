"""Publishing files as events and reading results back, through the CLI a user runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from producer.files import EventFileError, detect_format, read_events
from streamscore import jsonio
from tests.kafka_helpers import produce, read

pytestmark = pytest.mark.broker


def cli(cfg, *args: str):
    return CliRunner().invoke(main, ["--config", str(cfg.source), *args])


def test_read_events_from_csv_turns_numbers_into_numbers(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("id,x,y,name\na1,1,2.5,foo\na2,,3,bar\n")
    assert list(read_events(path, "csv")) == [
        {"id": "a1", "x": 1, "y": 2.5, "name": "foo"},
        {"id": "a2", "x": None, "y": 3, "name": "bar"},
    ]


def test_read_events_from_bad_jsonl_names_the_line(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"id": 1}\n{oops\n')
    with pytest.raises(EventFileError, match=r"e.jsonl:2: not valid JSON"):
        list(read_events(path, "jsonl"))


def test_unknown_extension_asks_for_format(tmp_path):
    with pytest.raises(EventFileError, match="--format"):
        detect_format(tmp_path / "events.txt")


def test_publish_jsonl_with_key_field_and_final_count(config_factory, tmp_path):
    cfg = config_factory()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(jsonio.dumps({"id": f"p-{i}", "x": i}) for i in range(30)) + b"\n")
    result = cli(cfg, "publish", str(path), "--key-field", "id")
    assert result.exit_code == 0, result.output
    assert "sent 30, failed 0" in result.output
    records = read(cfg.kafka, cfg.kafka.input_topic, expected=30)
    assert sorted(r.key for r in records) == sorted(f"p-{i}".encode() for i in range(30))
    assert {r.value["x"] for r in records} == set(range(30))


def test_publish_to_a_refused_address_fails_within_5_s_naming_it(config_factory, tmp_path):
    import time

    from broker import free_port

    address = f"127.0.0.1:{free_port()}"
    cfg = config_factory(create_topics=False, kafka={"bootstrap_servers": address})
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonio.dumps({"id": "p-0"}) + b"\n")
    started = time.monotonic()
    result = cli(cfg, "publish", str(path))
    assert time.monotonic() - started < 5.0
    assert result.exit_code == 2
    assert f"Kafka is not reachable at {address}" in result.output
    assert "connection refused" in result.output


def test_publish_csv_at_a_rate_with_limit(config_factory, tmp_path):
    cfg = config_factory()
    path = tmp_path / "events.csv"
    path.write_text("id,x\n" + "".join(f"c-{i},{i}.5\n" for i in range(10)))
    result = cli(cfg, "publish", str(path), "--rate", "200", "--limit", "6")
    assert result.exit_code == 0, result.output
    assert "sent 6, failed 0" in result.output
    records = read(cfg.kafka, cfg.kafka.input_topic, expected=6)
    assert sorted(r.value["x"] for r in records) == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]


def test_publish_repeat_sends_the_file_n_times_at_the_rate(config_factory, tmp_path):
    cfg = config_factory()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(jsonio.dumps({"id": f"r-{i}", "x": i}) + b"\n" for i in range(5)))
    result = cli(cfg, "publish", str(path), "--repeat", "4", "--rate", "100")
    assert result.exit_code == 0, result.output
    assert "sent 20, failed 0" in result.output
    records = read(cfg.kafka, cfg.kafka.input_topic, expected=20)
    assert sorted(r.value["x"] for r in records) == sorted(list(range(5)) * 4)
    seconds = float(re.search(r"in ([0-9.]+)s", result.output).group(1))
    assert seconds >= 19 / 100  # 20 events at 100/s: the last one is due after 0.19 s


def test_publish_loop_runs_until_the_limit_and_needs_a_rate(config_factory, tmp_path):
    cfg = config_factory()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(jsonio.dumps({"id": f"l-{i}", "x": i}) + b"\n" for i in range(3)))
    refused = cli(cfg, "publish", str(path), "--loop")
    assert refused.exit_code == 2 and "give it a --rate" in refused.output
    result = cli(cfg, "publish", str(path), "--loop", "--rate", "500", "--limit", "10")
    assert result.exit_code == 0, result.output
    assert "sent 10, failed 0" in result.output
    records = read(cfg.kafka, cfg.kafka.input_topic, expected=10)
    assert sorted(r.value["x"] for r in records) == sorted([0, 1, 2] * 3 + [0])  # 3 passes + 1


def test_tail_prints_latest_predictions_as_table_and_json(config_factory):
    cfg = config_factory()
    outputs = [
        {
            "id": f"o-{i}",
            "prediction": i % 2,
            "probabilities": {"0": 0.5, "1": 0.5},
            "model": {"name": "demo", "version": 1},
            "scored_at": 1,
        }
        for i in range(12)
    ]
    produce(cfg.kafka, outputs, topic=cfg.kafka.output_topic)
    table = cli(cfg, "tail", "-n", "5")
    assert table.exit_code == 0, table.output
    assert "5 shown" in table.output
    lines = cli(cfg, "tail", "-n", "3", "--json").output.strip().splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["value"]["model"]["version"] == 1 for line in lines)
    everything = cli(cfg, "tail", "--from-beginning", "-n", "100", "--json").output.splitlines()
    assert len(everything) == 12


def test_tail_dead_letters_shows_the_error_headers(config_factory, register, demo_set):
    import threading

    from worker.service import ScoringWorker

    cfg = config_factory()
    register()
    worker = ScoringWorker(cfg)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        produce(cfg.kafka, [b"{broken", demo_set.event(0)])
        read(cfg.kafka, cfg.kafka.dead_letter_topic, expected=1)
    finally:
        worker.stop()
        thread.join(timeout=30)
    result = cli(cfg, "tail", "--dead-letters", "--json")
    [line] = result.output.strip().splitlines()
    data = json.loads(line)
    assert data["value"] == "{broken"
    assert data["headers"]["streamscore.error.stage"] == "decode"
    table = cli(cfg, "tail", "--dead-letters")
    assert "decode" in table.output and "JSONDecodeError" in table.output


def test_publish_missing_file_is_a_usage_error(config_factory, tmp_path: Path):
    cfg = config_factory()
    result = cli(cfg, "publish", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2 and "does not exist" in result.output
