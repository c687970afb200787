"""Where an offset is committed: after the batch's outputs are acknowledged, never before
(at-least-once), or with them in one transaction (exactly-once).

A worker killed at any point therefore loses nothing: its partitions move to another member,
which resumes from the last commit and may score the last batch again (at-least-once); in
exactly-once mode the interrupted transaction is aborted, so read_committed readers never see
that batch twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from streamscore.wire import OutRecord
from worker.batcher import next_offsets
from worker.refusals import source_of
from worker.transport import CommitOffsets, Refused, Sending, TransactionRefused, Transport

log = logging.getLogger(__name__)


#: ``replace(refused)``: the records to publish instead of those the broker refused for good
#: (their ``publish`` dead letters), possibly fewer.
ReplaceRefused = Callable[[list[Refused]], list[OutRecord]]

#: A dead letter of a refused record refused again carries no value; at most this many rounds.
_REPLACEMENT_ROUNDS = 2


def publish_then_commit(
    transport: Transport,
    outputs: Sequence[OutRecord],
    records: Sequence[Any],
    stop: threading.Event,
    replace: ReplaceRefused | None = None,
) -> bool:
    """Publish ``outputs`` (predictions and dead letters of ``records``), wait until the broker
    acknowledged each one, then commit the offsets after ``records``. False when the commit was
    refused (the group rebalanced first) or failed at shutdown.

    A record the broker refuses for good (too large) is not retried: ``replace`` gives its
    dead letter (stage ``publish``), published in its place before the commit.

    Raises :class:`worker.transport.DeliveryFailed` at shutdown when outputs are still
    unacknowledged: nothing is committed then, and the next owner scores those records again.
    """
    return settle_then_commit(transport, transport.send(outputs), records, stop, replace)


def settle_then_commit(
    transport: Transport,
    sending: Sending,
    records: Sequence[Any],
    stop: threading.Event,
    replace: ReplaceRefused | None = None,
    commit: CommitOffsets | None = None,
) -> bool:
    """:func:`publish_then_commit` for outputs already handed to the producer
    (``transport.send``): wait until each one is acknowledged, publish the replacements of
    those refused for good, then commit the offsets after ``records`` (with ``commit`` when
    given: a revoke on the consumer's network thread). The pipelined loop
    (:mod:`worker.pipeline`) calls it for its oldest batch while the next one is scored."""
    refused = transport.settle(sending, stop)
    for _ in range(_REPLACEMENT_ROUNDS):
        if not refused or replace is None:
            break
        refused = transport.publish(replace(refused), stop)
    for record, reason in refused:
        log.error(
            "%s: a record (%d bytes, key %r) refused for good and not published: %s",
            record.topic,
            len(record.value or b""),
            (record.key or b"")[:40],
            reason,
        )
    if commit is not None:
        return commit(next_offsets(records))
    return transport.commit(next_offsets(records), stop)


def publish_in_transaction(
    transport: Transport,
    outputs: Sequence[OutRecord],
    records: Sequence[Any],
    stop: threading.Event,
    replace: ReplaceRefused | None = None,
) -> bool:
    """Publish ``outputs`` and commit the offsets after ``records`` in one transaction. False
    when it was aborted because the group moved on: the caller rewinds the partitions it keeps
    to ``records``' first offsets (:meth:`worker.batcher.Batcher.rewind_to`).

    Records refused for good (too large) abort the transaction
    (:class:`worker.transport.TransactionRefused`); it is built again with ``replace``'s dead
    letters in their place, at most ``_REPLACEMENT_ROUNDS`` times, then without the records
    still refused (logged), so a refused record never blocks its partition.

    Raises :class:`worker.transport.DeliveryFailed` at shutdown when it could not commit:
    nothing of the batch is visible then, and the next owner scores those records again.
    """
    offsets = next_offsets(records)
    pending = list(outputs)
    rounds = 0
    while True:
        try:
            return transport.publish_transaction(pending, offsets, stop)
        except TransactionRefused as exc:
            rounds += 1
            if replace is not None and rounds <= _REPLACEMENT_ROUNDS:
                replaced = _replaced(pending, exc.refused, replace)
                if replaced != pending:
                    pending = replaced
                    continue
                # No progress (the refused records are not among the pending ones, or were
                # replaced by equal ones): building it again would be refused again.
            for record, reason in exc.refused:
                log.error(
                    "%s: a record (%d bytes, key %r) refused for good and not published: %s",
                    record.topic,
                    len(record.value or b""),
                    (record.key or b"")[:40],
                    reason,
                )
            dropped = _replaced(pending, exc.refused, lambda _: [])
            if len(dropped) == len(pending):  # not found by identity: by their sources
                gone = {source_of(r.record) for r in exc.refused} - {None}
                dropped = [r for r in pending if source_of(r) not in gone]
            if len(dropped) == len(pending):
                # Nothing left to drop (the client refused records it was not given): a
                # transaction built again would be refused again. The batch goes without
                # its outputs rather than stopping its partitions.
                log.error(
                    "a transaction of %d records was refused for %d record(s) not among them; "
                    "committing the batch's offsets without its outputs (%d events lost to "
                    "readers: score them again from their offsets if needed)",
                    len(pending),
                    len(exc.refused),
                    len(records),
                )
                dropped = []
            pending = dropped


def _replaced(
    outputs: list[OutRecord], refused: list[Refused], replace: ReplaceRefused
) -> list[OutRecord]:
    """``outputs`` with each refused record swapped, in place, for its replacement (the dead
    letter of the same source input; none for outputs of no input), so the order per
    partition stays the input order. A client may report a refused record as a copy: it is
    found by topic and source input, or by key and value for outputs of no input."""
    gone = {_identity(r.record) for r in refused}
    instead = {source_of(new): new for new in replace(refused)}
    out: list[OutRecord] = []
    for record in outputs:
        if _identity(record) not in gone:
            out.append(record)
            continue
        new = instead.pop(source_of(record), None)
        if new is not None:
            out.append(new)
    return out


def _identity(record: OutRecord) -> tuple[str, Any]:
    source = source_of(record)
    return (record.topic, source if source is not None else (record.key, record.value))
