"""The retry rules both Kafka clients share (worker/transport.py), without a broker; and that a
confluent-kafka worker does not load kafka-python. Both clients against a real broker that goes
away and comes back: test_transports.py."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from streamscore.exceptions import StreamscoreError
from streamscore.wire import OutRecord
from worker.transport import (
    Backoff,
    DeliveryFailed,
    Refused,
    Strikes,
    TransactionRefused,
    commit_until_done,
    publish_until_acknowledged,
    record_identity,
    refused_alone,
    settle_until_acknowledged,
    transact_refusing_alone,
)

FAST = Backoff(0.001, 0.004)


def records(n: int) -> list[OutRecord]:
    return [OutRecord("out", None, b"{}", [], 0) for _ in range(n)]


def test_backoff_doubles_up_to_its_maximum():
    delays = Backoff(0.5, 3.0).delays_s()
    assert [next(delays) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_publish_sends_the_failed_records_again_on_a_new_producer():
    rounds: list[int] = []
    renewed: list[int] = []

    def send_round(pending: list[OutRecord]) -> tuple[list[OutRecord], str]:
        rounds.append(len(pending))
        return (pending[:2], "broker away") if len(rounds) == 1 else ([], "")

    publish_until_acknowledged(
        records(5), send_round, lambda: renewed.append(1), FAST, threading.Event()
    )
    assert rounds == [5, 2] and renewed == [1]


def test_publish_at_shutdown_raises_delivery_failed_under_the_product_root():
    stop = threading.Event()
    stop.set()
    with pytest.raises(DeliveryFailed, match=r"3 of 5 records unacknowledged at shutdown: gone"):
        publish_until_acknowledged(records(5), lambda p: (p[:3], "gone"), lambda: None, FAST, stop)
    assert issubclass(DeliveryFailed, StreamscoreError)


class Transient(Exception):
    pass


class Rebalanced(Transient):
    pass


def commit(attempt, stop: threading.Event, backoff: Backoff = FAST) -> bool:
    return commit_until_done(
        attempt,
        transient=(Transient,),
        refused=lambda exc: isinstance(exc, Rebalanced),
        backoff=backoff,
        stop=stop,
    )


def sized(*sizes: int) -> list[OutRecord]:
    return [OutRecord("out", str(i).encode(), b"x" * n, [], 0) for i, n in enumerate(sizes)]


def test_records_refused_together_are_sent_alone_and_only_the_too_large_stay_refused():
    # A broker refuses a whole batch: the small record shared the large one's refusal.
    small, large = sized(10, 500)
    sent_alone: list[OutRecord] = []

    def send_alone(record: OutRecord) -> list[Refused]:
        sent_alone.append(record)
        return [Refused(record, "too large")] if len(record.value or b"") > 100 else []

    together = [Refused(small, "too large"), Refused(large, "too large")]

    assert refused_alone(together, send_alone) == [Refused(large, "too large")]
    assert sent_alone == [small, large]
    assert refused_alone([Refused(large, "x")], send_alone) == [Refused(large, "x")]  # alone
    assert len(sent_alone) == 2  # one refused record was alone already: not sent again


class Batch:
    """A batch a fake client sent: the broker refuses what it writes of a batch whole when one
    record is over 100 bytes (a record batch's limit); the first batch's last record is lost
    (a broker away)."""

    def __init__(self, records_: list[OutRecord]) -> None:
        self.records = records_
        self.refused: list[Refused] = []


def test_settle_sends_again_what_failed_then_each_record_refused_together_alone_between_flushes():
    small, large, other = sized(10, 500, 20)
    log: list[object] = []
    lost_first: list[bool] = []

    def send(records_):
        log.append([r.key for r in records_])
        return Batch(list(records_))

    def outcome(
        batch: Batch, refused: list[Refused], strikes: Strikes
    ) -> tuple[list[OutRecord], str | None]:
        lost = [] if lost_first else batch.records[-1:]
        lost_first.append(True)
        written = [r for r in batch.records if r not in lost]
        if any(len(r.value or b"") > 100 for r in written):
            refused += [Refused(r, "too large") for r in written]
        return lost, "broker away" if lost else None

    renewed: list[int] = []
    refused = settle_until_acknowledged(
        send([small, large, other]),
        send=send,
        outcome=outcome,
        flush=lambda: log.append("flush"),
        renew_producer=lambda: renewed.append(1),
        backoff=FAST,
        stop=threading.Event(),
    )
    assert refused == [Refused(large, "too large")]
    assert renewed == [1]
    assert log == [
        [b"0", b"1", b"2"],
        [b"2"],  # the lost one sent again: acknowledged, the first two refused together
        *("flush", [b"0"], "flush"),
        *("flush", [b"1"], "flush"),
    ]


def test_a_transaction_refused_together_is_rebuilt_with_the_suspects_alone_then_raises():
    records_ = sized(10, 500, 10)
    attempts: list[frozenset] = []

    def attempt(alone: frozenset) -> bool:
        attempts.append(alone)
        batch_refused = [r for r in records_[:2] if record_identity(r) not in alone]
        if batch_refused and len(batch_refused) == 2:  # records 0 and 1 share one batch
            raise TransactionRefused([Refused(r, "too large") for r in batch_refused])
        raise TransactionRefused([Refused(records_[1], "too large")])  # alone, still refused

    with pytest.raises(TransactionRefused) as raised:
        transact_refusing_alone(attempt)

    assert [r.record for r in raised.value.refused] == [records_[1]]
    assert attempts == [frozenset(), frozenset(record_identity(r) for r in records_[:2])]


def test_commit_retries_transient_failures_until_it_succeeds():
    failures = [Transient("timeout"), Transient("timeout")]

    def attempt() -> None:
        if failures:
            raise failures.pop()

    assert commit(attempt, threading.Event()) is True
    assert failures == []


def test_commit_refused_after_a_rebalance_is_not_retried():
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise Rebalanced("generation moved on")

    assert commit(attempt, threading.Event()) is False
    assert calls == [1]


def test_commit_backoff_ends_as_soon_as_stop_is_set():
    stop = threading.Event()

    def attempt() -> None:
        raise Transient("broker away")

    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert commit(attempt, stop, Backoff(30.0, 30.0)) is False
    assert time.monotonic() - started < 5


def test_confluent_transport_does_not_import_kafka_python():
    code = (
        "import sys, worker.confluent_io, worker.transport, worker.client_settings; "
        "print('kafka' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_a_confluent_call_that_ignores_its_timeout_breaks_the_pair_instead_of_the_loop(
    monkeypatch,
):
    """librdkafka's send_offsets_to_transaction can block far past its timeout (#5456): the
    call gets a deadline, the transport then refuses to go on (ClientsBroken: the loop builds
    new clients) and the stuck call keeps no thread the process waits for at exit."""
    from worker import confluent_io
    from worker.transport import ClientsBroken

    monkeypatch.setattr(confluent_io, "_DEADLINE_MARGIN_S", 0.05)
    monkeypatch.setattr(confluent_io, "_ABANDONED", [])
    transport = confluent_io.ConfluentTransport.__new__(confluent_io.ConfluentTransport)
    transport._calls = None
    transport._broken = None
    transport._fenced = False
    transport.producer = stuck_producer = object()
    release = threading.Event()
    assert transport._bounded("quick", lambda: 7, 1.0) == 7
    started = time.monotonic()
    with pytest.raises(ClientsBroken, match="send_offsets_to_transaction still blocked"):
        transport._bounded("send_offsets_to_transaction", lambda: release.wait(30), 0.1)
    assert time.monotonic() - started < 5
    abandoned = confluent_io._ABANDONED
    assert abandoned == [stuck_producer]
    with pytest.raises(ClientsBroken):
        transport.poll(100, 10)
    stuck = [t for t in threading.enumerate() if t.name == "librdkafka-call" and t.is_alive()]
    assert stuck and all(t.daemon for t in stuck)
    release.set()


def test_kafka_python_fetch_wait_follows_the_poll_wait_within_its_bounds():
    """An idle worker's long poll lets the broker hold the fetch (fewer fetches a second); a
    busy worker's short polls keep the configured wait. kafka-python reads
    ``_fetcher.config["fetch_max_wait_ms"]`` for every fetch it builds (3.0.12)."""
    from types import SimpleNamespace

    from worker import kafka_io

    transport = kafka_io.KafkaPythonTransport.__new__(kafka_io.KafkaPythonTransport)
    config = {"fetch_max_wait_ms": 10}
    transport.consumer = SimpleNamespace(_fetcher=SimpleNamespace(config=config))
    transport._fetch_wait_ms = 10
    transport._follow_wait(500)
    assert config["fetch_max_wait_ms"] == 500
    transport._follow_wait(0)
    assert config["fetch_max_wait_ms"] == 10
    transport._follow_wait(5000)
    assert config["fetch_max_wait_ms"] == 500


def test_kafka_python_3_builds_each_fetch_from_the_fetcher_config():
    """The attribute :meth:`_follow_wait` changes is the one kafka-python reads."""
    import inspect

    from kafka.consumer import fetcher

    assert "self.config['fetch_max_wait_ms']" in inspect.getsource(fetcher.Fetcher)
