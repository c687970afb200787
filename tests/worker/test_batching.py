"""How the worker gathers a batch: full batches under load, no waiting under light load.

These drive ``ScoringWorker._gather`` with a scripted client (what each poll returns and how
long it blocks), so the policy is checked exactly and fast; the same loop runs against a real
broker in test_stream.py and test_processes.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamscore.config import config_from_dict
from worker.service import ScoringWorker


@dataclass
class ScriptedClient:
    """Each poll returns the next scripted list; an empty script blocks for the timeout."""

    script: list[list[int]]
    polls: list[tuple[int, int]] = field(default_factory=list)  # (timeout_ms, max_records)

    def poll(self, timeout_ms: int, max_records: int) -> list[Any]:
        self.polls.append((timeout_ms, max_records))
        if self.script:
            return self.script.pop(0)[:max_records]
        time.sleep(timeout_ms / 1000)
        return []


def worker(tmp_path: Path, **settings: Any) -> ScoringWorker:
    cfg = config_from_dict(
        {"worker": {"max_wait_ms": 200, **settings}, "http": {"enabled": False}},
        base_dir=tmp_path,
    )
    return ScoringWorker(cfg)


def gather(w: ScoringWorker, client: ScriptedClient) -> tuple[list[Any], float]:
    started = time.monotonic()
    w._gather(client)  # type: ignore[arg-type]
    batch, w._batch = w._batch, []
    return batch, time.monotonic() - started


def test_what_has_arrived_is_scored_without_waiting_for_more(tmp_path):
    client = ScriptedClient([[1, 2, 3]])
    batch, took = gather(worker(tmp_path), client)
    assert batch == [1, 2, 3]
    # First poll may wait for events; once some arrived, the next poll only takes what is
    # buffered (timeout 0), and finding nothing ends the batch.
    [(first_timeout, _), second] = client.polls
    assert 150 < first_timeout <= 200 and second == (0, 997)
    assert took < 0.1


def test_events_that_keep_arriving_join_the_batch_up_to_the_limit(tmp_path):
    client = ScriptedClient([[1, 2], [3, 4], [5, 6, 7, 8]])
    batch, _ = gather(worker(tmp_path, max_batch_records=5), client)
    assert batch == [1, 2, 3, 4, 5]
    assert [m for _, m in client.polls] == [5, 3, 1]
    assert client.script == []


def test_nothing_arriving_returns_an_empty_batch_after_max_wait(tmp_path):
    batch, took = gather(worker(tmp_path, max_wait_ms=100), ScriptedClient([]))
    assert batch == []
    assert 0.09 <= took < 0.5


def test_batch_linger_waits_for_more_after_the_first_event(tmp_path):
    client = ScriptedClient([[1], [], [2]])
    batch, took = gather(worker(tmp_path, batch_linger_ms=150), client)
    assert batch == [1, 2]
    assert took >= 0.135
    assert all(timeout > 0 for timeout, _ in client.polls[1:-1])
