"""Record sizes against ``[worker] max_message_bytes``: what is too large to produce, and how a
dead letter is made to fit.

A record over the limit is never handed to a client (which would refuse it every time, a retry
loop): :func:`record_size` is checked before producing, from lengths only. A dead letter that
would not fit carries the first whole KiB of the original value that fit beside its headers,
with ``streamscore.value.length`` (the original length) and ``streamscore.value.truncated``;
its source headers (topic, partition, offset) say where the full value can be read. A tombstone
(null value) stays null in its dead letter, marked ``streamscore.value.null``.
"""

from __future__ import annotations

from streamscore.wire import H_VALUE_LENGTH, H_VALUE_NULL, H_VALUE_TRUNCATED, Headers, OutRecord

#: Kafka's record-batch header (61 bytes) plus one record's framing (varints), rounded up: a
#: record of ``record_size`` bytes or less fits in a produce request of that size.
RECORD_OVERHEAD = 128
#: Per header: its two varint lengths, rounded up.
HEADER_OVERHEAD = 8
KIB = 1024


def headers_size(headers: Headers) -> int:
    return sum(HEADER_OVERHEAD + len(name) + len(value) for name, value in headers)


def record_size(record: OutRecord) -> int:
    """An upper bound of what ``record`` weighs in a produce request (both clients check less)."""
    key, value = record.key, record.value
    return (
        RECORD_OVERHEAD
        + (len(key) if key is not None else 0)
        + (len(value) if value is not None else 0)
        + headers_size(record.headers)
    )


def fitted_dead_letter(
    topic: str, key: bytes | None, value: bytes | None, headers: Headers, limit: int
) -> OutRecord:
    """The dead letter of ``value``: the value itself when the record fits in ``limit`` bytes,
    else its first whole KiB that fit (possibly none) with the truncation headers; a tombstone
    stays null with its marker."""
    if value is None:
        return OutRecord(topic, key, None, [*headers, (H_VALUE_NULL, b"true")])
    record = OutRecord(topic, key, value, headers)
    if record_size(record) <= limit:
        return record
    marks: Headers = [
        (H_VALUE_LENGTH, str(len(value)).encode()),
        (H_VALUE_TRUNCATED, b"true"),
    ]
    if key is not None and RECORD_OVERHEAD + len(key) + headers_size(headers) > limit // 2:
        key = key[: limit // 4]  # a key that alone nearly fills the record: cut too
    room = limit - record_size(OutRecord(topic, key, b"", [*headers, *marks]))
    keep = max(room, 0) // KIB * KIB
    return OutRecord(topic, key, value[:keep], [*headers, *marks])


__all__ = ["fitted_dead_letter", "headers_size", "record_size"]
