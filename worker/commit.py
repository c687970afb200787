"""Where an offset is committed: after the batch's outputs are acknowledged, never before
(at-least-once), or with them in one transaction (exactly-once).

A worker killed at any point therefore loses nothing: its partitions move to another member,
which resumes from the last commit and may score the last batch again (at-least-once); in
exactly-once mode the interrupted transaction is aborted, so read_committed readers never see
that batch twice.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from streamscore.wire import OutRecord
from worker.batcher import next_offsets
from worker.transport import Transport


def publish_then_commit(
    transport: Transport,
    outputs: Sequence[OutRecord],
    records: Sequence[Any],
    stop: threading.Event,
) -> bool:
    """Publish ``outputs`` (predictions and dead letters of ``records``), wait until the broker
    acknowledged each one, then commit the offsets after ``records``. False when the commit was
    refused (the group rebalanced first) or failed at shutdown.

    Raises :class:`worker.transport.DeliveryFailed` at shutdown when outputs are still
    unacknowledged: nothing is committed then, and the next owner scores those records again.
    """
    transport.publish(outputs, stop)
    return transport.commit(next_offsets(records), stop)


def publish_in_transaction(
    transport: Transport,
    outputs: Sequence[OutRecord],
    records: Sequence[Any],
    stop: threading.Event,
) -> bool:
    """Publish ``outputs`` and commit the offsets after ``records`` in one transaction. False
    when it was aborted because the group moved on: the caller rewinds the partitions it keeps
    to ``records``' first offsets (:meth:`worker.batcher.Batcher.rewind_to`).

    Raises :class:`worker.transport.DeliveryFailed` at shutdown when it could not commit:
    nothing of the batch is visible then, and the next owner scores those records again.
    """
    return transport.publish_transaction(outputs, next_offsets(records), stop)
