"""The bootstrap pre-flight check: a wrong address is reported fast, naming it and the fix."""

from __future__ import annotations

import socket
import time

import pytest

from broker import free_port
from streamscore.config import config_from_dict
from streamscore.exceptions import BrokerError
from streamscore.preflight import check_address, check_bootstrap


def kafka_at(bootstrap: str):
    return config_from_dict({"kafka": {"bootstrap_servers": bootstrap}}, environ={}).kafka


def test_check_bootstrap_reports_a_refused_port_at_once_with_the_address_and_the_fix():
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BrokerError) as caught:
        check_bootstrap(kafka_at(address))
    assert time.monotonic() - started < 1.0
    message = str(caught.value)
    assert address in message and "connection refused" in message
    assert "streamscore broker start" in message and "bootstrap_servers" in message


def test_check_bootstrap_reports_an_unresolvable_host_within_5_s():
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"no-such-host\.invalid:9092: host .* does not resolve"):
        check_bootstrap(kafka_at("no-such-host.invalid:9092"))
    assert time.monotonic() - started < 5.0


def test_check_bootstrap_reports_an_address_that_does_not_answer_within_its_timeout():
    # A listening socket whose backlog is full does not complete new handshakes.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        fillers = []
        try:
            for _ in range(8):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", server.getsockname()[1]))
                fillers.append(s)
            result = check_address(address, timeout_s=0.5)
        finally:
            for s in fillers:
                s.close()
    if result.ok:
        pytest.skip("this kernel completes handshakes beyond the backlog: nothing to time out")
    assert "within 0.5 s" in result.problem


def test_check_bootstrap_passes_when_one_of_the_addresses_answers():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        live = f"127.0.0.1:{server.getsockname()[1]}"
        check_bootstrap(kafka_at(f"127.0.0.1:{free_port()},{live}"))


def test_check_address_refuses_what_is_not_host_port():
    assert check_address("localhost").problem == "not host:port"
    assert check_address("host:99999").problem == "not host:port"
