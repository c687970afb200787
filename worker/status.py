"""What one worker reports about itself: for health checks, the status page and ``/status``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.transport import Partition


@dataclass
class WorkerStatus:
    """A snapshot for health checks and the status page."""

    worker_id: str
    started_at: float
    model: dict[str, Any] | None = None
    assigned: list[Partition] = field(default_factory=list)
    scored: int = 0
    dead_letters: int = 0
    batches: int = 0
    last_batch_at: float | None = None
    waiting_reason: str = ""
