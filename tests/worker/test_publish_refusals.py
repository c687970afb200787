"""Which publish errors are refused for good (dead-lettered, stage ``publish``) and which are
retried, in each client's own terms; and the bound on retries while the broker is answering
(worker/transport.py ``Strikes``), with an outage still waited out however long. No broker:
the clients' round outcomes are fed the errors their libraries report."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError
from kafka import errors as kerrors

from streamscore.wire import OutRecord
from worker import confluent_io, kafka_io
from worker.transport import (
    PUBLISH_ROUNDS,
    Backoff,
    Refused,
    Strikes,
    settle_until_acknowledged,
)

FAST = Backoff(0.001, 0.002)


def outs(n: int) -> list[OutRecord]:
    return [OutRecord("out", str(i).encode(), b"{}", [], 0) for i in range(n)]


# ---------------------------------------------------------------------- kafka-python


@pytest.mark.parametrize(
    "error",
    [
        kerrors.MessageSizeTooLargeError(),
        kerrors.InvalidRecordError(),
        kerrors.PolicyViolationError(),  # non-retriable: not in the old list of three
        kerrors.InvalidTimestampError(),
        kerrors.TopicAuthorizationFailedError(),
        kerrors.CorruptRecordError(),
    ],
    ids=type,
)
def test_kafka_python_a_non_retriable_broker_error_is_refused_for_good(error):
    assert kafka_io.refused_for_good(error)


@pytest.mark.parametrize(
    "error",
    [
        kerrors.NotLeaderForPartitionError(),  # retriable: a leader moving
        kerrors.NotEnoughReplicasError(),
        kerrors.RequestTimedOutError(),
        kerrors.KafkaTimeoutError(),  # no answer: an outage
        kerrors.KafkaConnectionError(),
        kerrors.IllegalStateError("Producer is closed forcefully."),  # local: a renewal
        kerrors.OutOfOrderSequenceNumberError(),  # the producer's session: a new one clears it
        kerrors.UnknownProducerIdError(),
        kerrors.ProducerFencedError(),
        "no ack before timeout",
    ],
    ids=str,
)
def test_kafka_python_transient_local_and_producer_session_errors_are_retried(error):
    assert not kafka_io.refused_for_good(error)


class Future:
    """A kafka-python future, done: acknowledged or failed with ``exception``."""

    def __init__(self, exception: Exception | None = None) -> None:
        self.is_done = True
        self.exception = exception

    def succeeded(self) -> bool:
        return self.exception is None

    def get(self, timeout: float) -> None:
        return None


def kafka_python_round(failures: dict[int, Exception | None]) -> Any:
    """The kafka-python transport's outcome of a batch of len(failures) records."""
    transport = kafka_io.KafkaPythonTransport.__new__(kafka_io.KafkaPythonTransport)
    transport.delivery_timeout_s = 0.1
    batch = kafka_io._Sending(outs(len(failures)))
    batch.sent = [(r, Future(failures[i])) for i, r in enumerate(batch.records)]
    return transport, batch


def test_kafka_python_round_refuses_a_policy_violation_at_once_and_retries_a_not_leader():
    transport, batch = kafka_python_round(
        {0: None, 1: kerrors.PolicyViolationError("no"), 2: kerrors.NotLeaderForPartitionError()}
    )
    refused: list[Refused] = []
    failed, first = transport._outcome(batch, refused, Strikes())
    assert [r.record.key for r in refused] == [b"1"]
    assert "PolicyViolationError" in refused[0].reason
    assert [r.key for r in failed] == [b"2"] and isinstance(
        first, kerrors.NotLeaderForPartitionError
    )


def test_kafka_python_round_a_record_failing_while_others_are_acknowledged_runs_out_of_rounds():
    strikes = Strikes()
    refused: list[Refused] = []
    for _ in range(PUBLISH_ROUNDS - 1):
        transport, batch = kafka_python_round({0: None, 1: kerrors.KafkaTimeoutError("expired")})
        failed, _ = transport._outcome(batch, refused, strikes)
        assert [r.key for r in failed] == [b"1"] and not refused
    transport, batch = kafka_python_round({0: None, 1: kerrors.KafkaTimeoutError("expired")})
    failed, _ = transport._outcome(batch, refused, strikes)
    assert failed == [] and [r.record.key for r in refused] == [b"1"]
    assert f"not accepted in {PUBLISH_ROUNDS} rounds" in refused[0].reason
    assert "expired" in refused[0].reason


# ---------------------------------------------------------------------- confluent-kafka


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.POLICY_VIOLATION,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    ],
)
def test_confluent_a_non_transient_broker_error_is_refused_for_good(code):
    assert confluent_io._refused_for_good(KafkaError(code))


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._MSG_TIMED_OUT,  # no answer: an outage
        KafkaError._TRANSPORT,
        KafkaError._PURGE_QUEUE,  # purged by the worker itself, to produce again
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,  # the producer's session
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.PRODUCER_FENCED,
    ],
)
def test_confluent_transient_local_and_producer_session_errors_are_retried(code):
    assert not confluent_io._refused_for_good(KafkaError(code))


def test_confluent_a_delivery_reports_retriable_flag_says_nothing_so_codes_decide():
    # A delivery report's error is built from the code alone: retriable() is False even for
    # NOT_LEADER_FOR_PARTITION, hence the worker's own list of transient codes.
    assert not KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION).retriable()


class Producer:
    def poll(self, timeout: float) -> int:
        return 0


def confluent_round(failures: dict[int, int | None]) -> Any:
    """The confluent transport's outcome of a batch whose reports came with these codes."""
    transport = confluent_io.ConfluentTransport.__new__(confluent_io.ConfluentTransport)
    transport.delivery_timeout_s = 0.1
    records = outs(len(failures))
    ticket = confluent_io._Ticket(records, Producer())
    ticket.failed = [(KafkaError(code), records[i]) for i, code in failures.items() if code]
    return transport, ticket


def test_confluent_round_refuses_a_policy_violation_at_once_and_retries_a_not_leader():
    transport, ticket = confluent_round(
        {0: None, 1: KafkaError.POLICY_VIOLATION, 2: KafkaError.NOT_LEADER_FOR_PARTITION}
    )
    refused: list[Refused] = []
    failed, _ = transport._outcome(ticket, refused, Strikes())
    assert [r.record.key for r in refused] == [b"1"]
    assert [r.key for r in failed] == [b"2"]


def test_confluent_round_an_answered_error_runs_out_of_rounds_even_when_nothing_is_acked():
    strikes = Strikes()
    refused: list[Refused] = []
    for _ in range(PUBLISH_ROUNDS):
        transport, ticket = confluent_round({0: KafkaError.NOT_LEADER_FOR_PARTITION})
        failed, _ = transport._outcome(ticket, refused, strikes)
    assert failed == [] and [r.record.key for r in refused] == [b"0"]
    assert "NOT_LEADER" in refused[0].reason


def test_confluent_round_an_outage_never_runs_out_of_rounds():
    strikes = Strikes()
    refused: list[Refused] = []
    for _ in range(3 * PUBLISH_ROUNDS):
        transport, ticket = confluent_round(
            {0: KafkaError._MSG_TIMED_OUT, 1: KafkaError._TRANSPORT}
        )
        failed, _ = transport._outcome(ticket, refused, strikes)
        assert [r.key for r in failed] == [b"0", b"1"]
    assert refused == []


# ---------------------------------------------------------------------- the shared rule


class Sent:
    def __init__(self, records: list[OutRecord]) -> None:
        self.records = records
        self.refused: list[Refused] = []


def test_settle_gives_up_on_a_record_the_broker_keeps_failing_and_does_not_send_it_alone():
    """Record 1 fails in every round (an error the broker answers) while the others are
    acknowledged: after PUBLISH_ROUNDS rounds it is refused with the reason, the partition's
    other records were acknowledged in the first round, and it is not sent alone again."""
    sent: list[list[bytes | None]] = []

    def send(records: Any) -> Sent:
        sent.append([r.key for r in records])
        return Sent(list(records))

    def outcome(batch: Sent, refused: list[Refused], strikes: Strikes) -> tuple[list, Any]:
        failing = [(r, "NOT_ENOUGH_REPLICAS") for r in batch.records if r.key == b"1"]
        again = strikes.judge(
            failing,
            acknowledged=len(batch.records) > len(failing),
            answered=lambda error: True,
            refused=refused,
        )
        return again, "NOT_ENOUGH_REPLICAS" if again else None

    refused = settle_until_acknowledged(
        send(outs(3)),
        send=send,
        outcome=outcome,
        flush=lambda: None,
        renew_producer=lambda: None,
        backoff=FAST,
        stop=threading.Event(),
    )
    assert [r.record.key for r in refused] == [b"1"]
    assert "NOT_ENOUGH_REPLICAS" in refused[0].reason
    assert sent == [[b"0", b"1", b"2"]] + [[b"1"]] * (PUBLISH_ROUNDS - 1)
