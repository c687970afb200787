"""The embedded Tansu broker: lifecycle, pid file, port conflicts, and a real round trip."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker import (
    EmbeddedBroker,
    free_port,
    is_tansu_broker,
    kafka_answers,
    run_embedded_broker,
)
from streamscore import jsonio
from streamscore.exceptions import BrokerError
from tests.kafka_helpers import consume_all, produce_json, wait_until
from tests.tomlwrite import dumps_toml

# --------------------------------------------------------------------------- round trip


@pytest.mark.broker
def test_session_broker_round_trips_keys_headers_and_values_over_four_partitions(kafka_config):
    events = [{"id": f"e-{i % 10}", "n": i} for i in range(60)]
    acks = produce_json(
        kafka_config,
        kafka_config.input_topic,
        events,
        key_field="id",
        headers={"source": "test", "binary": b"\x00\xff"},
    )
    assert len(acks) == 60

    records = consume_all(kafka_config, kafka_config.input_topic, 60, settle_s=0.2)

    assert len(records) == 60
    assert sorted(r.value["n"] for r in records) == list(range(60))
    assert all(r.key == r.value["id"].encode() for r in records)
    assert all(dict(r.raw_headers) == {"source": b"test", "binary": b"\x00\xff"} for r in records)
    assert {r.partition for r in records} == {0, 1, 2, 3}
    partition_of_key = {}
    for r in records:  # one key, one partition: per-key order is kept
        assert partition_of_key.setdefault(r.key, r.partition) == r.partition
    for partition, count in Counter(r.partition for r in records).items():
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == list(range(count))


# --------------------------------------------------------------------------- lifecycle


@pytest.fixture
def broker(tansu_binary: str, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """An EmbeddedBroker on a free port in tmp_path, not started; stopped after the test."""
    embedded = EmbeddedBroker(port=free_port(), run_dir=tmp_path / "run", start_timeout_ms=5000)
    yield embedded
    embedded.stop(timeout_s=5)


def test_start_records_the_broker_and_answers_kafka_metadata(broker):
    started = broker.start()

    assert not started.already_running
    assert (started.host, started.port) == ("127.0.0.1", broker.port)
    assert kafka_answers("127.0.0.1", broker.port)
    record = jsonio.loads(broker.pid_file.read_bytes())
    assert record == {
        "pid": started.pid,
        "host": "127.0.0.1",
        "port": broker.port,
        "started_at": pytest.approx(time.time(), abs=10),
        "binary": started.binary,
    }
    assert is_tansu_broker(started.pid, "127.0.0.1", broker.port)
    assert os.getsid(started.pid) == started.pid, "detached: its own session"
    assert "--- streamscore: starting" in broker.log_file.read_text()


def test_status_gives_address_pid_and_uptime(broker):
    assert broker.status() is None
    started = broker.start()

    current = broker.status()

    assert current is not None
    assert current.pid == started.pid
    assert current.address == f"127.0.0.1:{broker.port}"
    assert 0 <= current.uptime_s < 10


def test_second_start_finds_the_running_broker(broker):
    first = broker.start()

    again = EmbeddedBroker(port=broker.port, run_dir=broker.run_dir).start()

    assert again.already_running
    assert again.pid == first.pid
    assert again.describe() == f"pid {first.pid}, 127.0.0.1:{broker.port}"


def test_stop_ends_exactly_the_recorded_process_and_removes_the_pid_file(broker):
    started = broker.start()

    assert EmbeddedBroker(port=broker.port, run_dir=broker.run_dir).stop() is True

    assert not broker.pid_file.exists()
    assert not Path(f"/proc/{started.pid}/cmdline").exists() or not is_tansu_broker(
        started.pid, "127.0.0.1", broker.port
    )
    assert not kafka_answers("127.0.0.1", broker.port, timeout_s=0.2)
    assert broker.stop() is False
    assert broker.status() is None


def test_stop_without_a_run_dir_is_not_running(tmp_path):
    assert EmbeddedBroker(port=free_port(), run_dir=tmp_path / "never").stop() is False


def test_restart_on_the_same_port_starts_empty(broker):
    broker.start()
    broker.stop()

    restarted = broker.start()

    assert not restarted.already_running
    assert kafka_answers("127.0.0.1", broker.port)


@pytest.mark.parametrize("listen", [True, False], ids=["listening", "bound"])
def test_start_refuses_a_port_held_by_another_process(broker, listen):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", broker.port))
        if listen:
            holder.listen()

        with pytest.raises(BrokerError) as err:
            broker.start()

    message = str(err.value)
    assert f"port {broker.port} on 127.0.0.1 is in use" in message
    assert "[broker] port" in message and "STREAMSCORE__BROKER__PORT" in message
    assert not broker.pid_file.exists()


def test_start_refuses_a_port_where_an_unrecorded_broker_answers(broker, tmp_path):
    other = EmbeddedBroker(port=broker.port, run_dir=tmp_path / "other")
    other.start()
    try:
        with pytest.raises(BrokerError, match=r"a Kafka broker not recorded in .* already answers"):
            broker.start()
    finally:
        other.stop()


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _write_pid_file(broker: EmbeddedBroker, pid: int) -> None:
    broker.run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": pid,
        "host": broker.host,
        "port": broker.port,
        "started_at": time.time(),
        "binary": "/x/tansu",
    }
    broker.pid_file.write_bytes(jsonio.dumps(record))


def test_stale_pid_file_of_a_dead_process_is_cleaned_up(broker):
    _write_pid_file(broker, _dead_pid())

    assert broker.status() is None
    assert not broker.pid_file.exists()
    assert not broker.start().already_running


def test_pid_reused_by_another_program_is_never_signalled(broker):
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        _write_pid_file(broker, stranger.pid)

        assert broker.stop() is False

        assert not broker.pid_file.exists()
        assert stranger.poll() is None, "the unrelated process must survive"
    finally:
        stranger.kill()
        stranger.wait()


def test_unreadable_pid_file_is_cleaned_up(broker):
    broker.run_dir.mkdir(parents=True)
    broker.pid_file.write_text("{not json")

    assert broker.status() is None
    assert not broker.pid_file.exists()


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path):
    """A look-alike ``tansu broker`` process that ignores SIGTERM (bash running a script)."""
    port = free_port()
    script = "trap '' TERM\ntouch trapped\nwhile :; do sleep 0.05; done\n"
    (tmp_path / "broker").write_text(script)
    url = f"tcp://127.0.0.1:{port}"
    stubborn = subprocess.Popen(
        ["tansu", "broker", "--listener-url", url, "--advertised-listener-url", url],
        executable="/bin/bash",
        cwd=tmp_path,
    )
    try:
        wait_until((tmp_path / "trapped").exists, 5, "the script to ignore SIGTERM")
        embedded = EmbeddedBroker(port=port, run_dir=tmp_path / "run")
        _write_pid_file(embedded, stubborn.pid)
        assert embedded.status() is not None

        started = time.monotonic()
        assert embedded.stop(timeout_s=0.3) is True

        assert 0.3 <= time.monotonic() - started < 5, "SIGTERM ignored, then SIGKILL"
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
        assert not embedded.pid_file.exists()
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_binary_that_exits_during_start_is_reported_with_its_log(tmp_path):
    binary = _script(tmp_path / "tansu", "import sys; print('boom: bad flag'); sys.exit(3)")
    embedded = EmbeddedBroker(port=free_port(), run_dir=tmp_path / "run", binary=binary)

    with pytest.raises(BrokerError) as err:
        embedded.start()

    assert "exited during start (code 3)" in str(err.value)
    assert "boom: bad flag" in str(err.value)
    assert not embedded.pid_file.exists()


def test_a_binary_that_never_answers_is_killed_after_the_start_timeout(tmp_path):
    binary = _script(
        tmp_path / "tansu", "import time; print('pretending', flush=True); time.sleep(60)"
    )
    embedded = EmbeddedBroker(
        port=free_port(), run_dir=tmp_path / "run", binary=binary, start_timeout_ms=300
    )

    started = time.monotonic()
    with pytest.raises(BrokerError) as err:
        embedded.start()

    assert time.monotonic() - started < 5
    message = str(err.value)
    assert "did not answer" in message and "within 300 ms" in message
    assert "[broker] start_timeout_ms" in message and "pretending" in message
    assert not embedded.pid_file.exists()


def test_a_missing_binary_names_the_setting(tmp_path):
    embedded = EmbeddedBroker(port=free_port(), run_dir=tmp_path, binary=str(tmp_path / "nope"))

    with pytest.raises(BrokerError, match=r"\[broker\] binary = .* is not an executable file"):
        embedded.start()


def test_localhost_is_refused_because_tansu_is_ipv4_only(tmp_path):
    with pytest.raises(BrokerError, match=r"use '127\.0\.0\.1'"):
        EmbeddedBroker(host="localhost", run_dir=tmp_path)


def test_run_embedded_broker_owns_its_broker_and_stops_it(tansu_binary, tmp_path):
    with run_embedded_broker(run_dir=tmp_path) as embedded:
        current = embedded.status()
        assert current is not None
        assert kafka_answers("127.0.0.1", embedded.port)
        assert os.getsid(current.pid) == os.getsid(0), "owned: stays in our session"

    assert embedded.status() is None
    assert not kafka_answers("127.0.0.1", embedded.port, timeout_s=0.2)


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_config(tansu_binary, tmp_path) -> Iterator[tuple[Path, int]]:
    """(config path, port): [kafka] bootstrap is the [broker] address; stopped after."""
    port = free_port()
    path = tmp_path / "config.toml"
    tables = {
        "kafka": {
            "bootstrap_servers": f"127.0.0.1:{port}",
            "input_topic": "in",
            "output_topic": "out",
            "dead_letter_topic": "dlq",
            "control_topic": "ctl",
            "partitions": 3,
            "request_timeout_ms": 10_000,
        },
        "broker": {"port": port, "run_dir": "run"},
    }
    path.write_text(dumps_toml(tables))
    yield path, port
    EmbeddedBroker(port=port, run_dir=tmp_path / "run").stop()


def _cli(*args: str):
    from app.broker_cli import broker

    return CliRunner().invoke(broker, list(args), catch_exceptions=False)


def test_cli_start_status_stop(cli_config):
    path, port = cli_config
    config = ["--config", str(path)]

    started = _cli("start", *config)
    again = _cli("start", *config)
    running = _cli("status", *config)
    stopped = _cli("stop", *config)
    after = _cli("status", *config)
    stopped_again = _cli("stop", *config)

    assert started.exit_code == 0, started.output
    assert "started (pid" in started.output and f"127.0.0.1:{port}" in started.output
    assert "in (3 partitions), out (3 partitions), dlq (3 partitions), ctl (1 partition)" in (
        started.output
    )
    assert again.exit_code == 0
    assert "already running (pid " in again.output and f", 127.0.0.1:{port})" in again.output
    assert running.exit_code == 0 and "running: 127.0.0.1" in running.output
    assert "answering" in running.output and "NOT" not in running.output
    assert stopped.exit_code == 0 and "stopped" in stopped.output
    assert after.exit_code == 1 and "not running" in after.output
    assert stopped_again.exit_code == 0 and "not running" in stopped_again.output


def test_cli_start_on_a_taken_port_exits_2_with_the_fix(cli_config):
    path, port = cli_config
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = _cli("start", "--config", str(path))

    assert result.exit_code == 2
    assert "STREAMSCORE__BROKER__PORT" in result.output


def test_cli_start_leaves_a_broker_that_outlives_the_command(cli_config):
    path, port = cli_config
    command = [sys.executable, "-m", "streamscore", "--config", str(path), "broker", "start"]

    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    embedded = EmbeddedBroker(port=port, run_dir=path.parent / "run")
    current = embedded.status()
    assert current is not None, "the broker must survive the CLI process"
    assert kafka_answers("127.0.0.1", port)
    assert os.getsid(current.pid) == current.pid
    assert embedded.stop() is True
    assert not kafka_answers("127.0.0.1", port, timeout_s=0.2)


def test_cli_start_creates_no_topics_when_kafka_points_elsewhere(tansu_binary, tmp_path):
    port = free_port()
    path = tmp_path / "config.toml"
    tables = {
        "kafka": {"bootstrap_servers": "kafka.example:9092"},
        "broker": {"port": port, "run_dir": "run"},
    }
    path.write_text(dumps_toml(tables))
    try:
        result = _cli("start", "--config", str(path))
    finally:
        EmbeddedBroker(port=port, run_dir=tmp_path / "run").stop()

    assert result.exit_code == 0, result.output
    assert "is not this broker: topics not created here" in result.output
