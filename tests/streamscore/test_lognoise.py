"""Kafka clients' repeated log lines are condensed to one line per state change."""

from __future__ import annotations

import logging

import pytest

from streamscore.lognoise import CondensingFilter, shape


@pytest.fixture
def captured():
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handlers = [Keep(), Keep()]  # two handlers (stderr and file): the same decision for both
    condense = CondensingFilter()
    for handler in handlers:
        handler.addFilter(condense)
    logger = logging.getLogger("kafka.conn")
    for handler in handlers:
        logger.addHandler(handler)
    mine = logging.getLogger("worker.test")
    for handler in handlers:
        mine.addHandler(handler)
    yield records
    for handler in handlers:
        logger.removeHandler(handler)
        mine.removeHandler(handler)


def test_shape_blanks_numbers_and_ids():
    a = "<BrokerConnection node_id=bootstrap-0 host=127.0.0.1:40123 <connecting>> returned 111"
    b = "<BrokerConnection node_id=bootstrap-1 host=127.0.0.1:40999 <connecting>> returned 111"
    assert shape(a) == shape(b)


def test_repeats_of_a_client_line_pass_once_per_state_change(captured):
    log = logging.getLogger("kafka.conn")
    for attempt in range(20):
        log.warning(
            "connect attempt %d to 127.0.0.1:%d returned error 111", attempt, 40000 + attempt
        )
    log.warning("Broker version identified as 2.6")  # a new state
    for _ in range(5):
        log.warning("connect attempt 1 to 127.0.0.1:4 returned error 111")
    kept = captured[::2]  # each record reached both handlers with the same decision
    assert captured[1::2] == kept
    assert len(kept) == 3
    assert kept[1].startswith("Broker version identified as 2.6 (after 19 similar line(s)")


def test_streamscore_lines_are_never_condensed(captured):
    for _ in range(3):
        logging.getLogger("worker.test").warning("same line")
    assert captured == ["same line"] * 6


def test_kafka_pythons_event_loop_warnings_are_one_line_until_something_else_is_said(captured):
    log = logging.getLogger("kafka.net.selector")
    handlers = logging.getLogger("kafka.conn").handlers  # the fixture's two
    for handler in handlers:
        log.addHandler(handler)
    try:
        for took in (0.103, 0.182, 0.44, 0.12):
            log.warning(
                "Task <kafka.net.selector.Task object at 0x7f%x> ran for %.3fs (>0.100s "
                "threshold). It is blocking the event loop",
                int(took * 1e6),
                took,
            )
    finally:
        for handler in handlers:
            log.removeHandler(handler)
    assert len(captured[::2]) == 1
