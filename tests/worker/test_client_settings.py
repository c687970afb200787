"""``[worker] max_message_bytes`` is the producers' limit in both clients' spelling, and the
consumers can still read back what the worker itself may write (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamscore.config import Config, load_config
from worker.client_settings import (
    confluent_consumer,
    confluent_producer,
    kafka_python_consumer,
    kafka_python_producer,
)


def config(tmp_path: Path, worker: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(f"[worker]\n{worker}\n", encoding="utf-8")
    return load_config(path, environ={})


@pytest.mark.parametrize("limit", [1_048_576, 4 * 1_048_576, 200_000])
def test_max_message_bytes_is_both_producers_request_limit(tmp_path, limit):
    cfg = config(tmp_path, f"max_message_bytes = {limit}")
    assert kafka_python_producer(cfg, "c")["max_request_size"] == limit
    assert confluent_producer(cfg, "c")["message.max.bytes"] == limit


def test_the_default_is_kafkas_own_one_mebibyte(tmp_path):
    cfg = config(tmp_path, "")
    assert kafka_python_producer(cfg, "c")["max_request_size"] == 1_048_576
    assert confluent_producer(cfg, "c")["message.max.bytes"] == 1_048_576


def test_a_consumers_whole_fetch_holds_a_message_of_the_largest_size_the_worker_writes(tmp_path):
    # A worker chain (one worker's outputs another's inputs) reads what it may write. The
    # per-partition limit may stay lower (256 KiB): brokers return a first record batch larger
    # than it whole (KIP-74), so it bounds memory, not the largest readable message.
    cfg = config(tmp_path, "")
    limit = cfg.worker.max_message_bytes
    assert kafka_python_consumer(cfg, "c")["fetch_max_bytes"] >= limit
    assert confluent_consumer(cfg, "c")["fetch.max.bytes"] >= limit
