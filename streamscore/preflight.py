"""Before any Kafka client starts: can the bootstrap addresses be resolved and reached?

A Kafka client pointed at a wrong address retries quietly for its whole bootstrap timeout
(kafka-python: ``request_timeout_ms``, 30 s by default) and logs a line per attempt; the
operator learns late and from noise. :func:`check_bootstrap` answers in at most
``timeout_s`` (default 3 s) with one error naming each address, what went wrong with it
(does not resolve, connection refused, no answer) and the fix.

One reachable address is enough (a Kafka client needs one to learn the cluster). The check is
TCP only, so it holds with TLS and SASL: whether the broker then speaks Kafka to us is the
client's business.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from streamscore.config import KafkaConfig
from streamscore.exceptions import BrokerError

DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class AddressCheck:
    """What happened when one ``host:port`` was tried."""

    address: str
    ok: bool
    problem: str = ""


def check_address(address: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> AddressCheck:
    """Resolve ``host:port`` and open (then close) a TCP connection to it."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return AddressCheck(address, False, "not host:port")
    host = host.strip("[]")
    deadline = time.monotonic() + timeout_s
    try:
        infos = socket.getaddrinfo(host, int(port_text), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return AddressCheck(address, False, f"host {host!r} does not resolve ({exc.strerror})")
    problems: list[str] = []
    for family, kind, proto, _name, sockaddr in infos:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            problems.append(f"no answer within {timeout_s:g} s")
            break
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(remaining)
                sock.connect(sockaddr)
            return AddressCheck(address, True)
        except ConnectionRefusedError:
            problems.append(f"connection refused on {sockaddr[0]}")
        except TimeoutError:
            problems.append(f"no answer from {sockaddr[0]} within {timeout_s:g} s")
        except OSError as exc:
            problems.append(f"{sockaddr[0]}: {exc.strerror or exc}")
    return AddressCheck(address, False, "; ".join(dict.fromkeys(problems)) or "no address")


def check_bootstrap(kafka: KafkaConfig, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Raise :class:`BrokerError` unless at least one bootstrap address accepts a connection.

    The addresses are tried in parallel, so the answer comes within ``timeout_s`` whatever
    their number.
    """
    addresses = [a.strip() for a in kafka.bootstrap_servers.split(",") if a.strip()]
    if not addresses:
        raise BrokerError(
            "[kafka] bootstrap_servers is empty: set it to host:port[,host:port...] "
            "(or STREAMSCORE__KAFKA__BOOTSTRAP_SERVERS)"
        )
    with ThreadPoolExecutor(max_workers=min(len(addresses), 8)) as pool:
        results = list(pool.map(lambda a: check_address(a, timeout_s), addresses))
    if any(r.ok for r in results):
        return
    detail = "; ".join(f"{r.address}: {r.problem}" for r in results)
    raise BrokerError(
        f"Kafka is not reachable at {kafka.bootstrap_servers} ({detail}). Start the embedded "
        f"broker (`streamscore broker start`), or point [kafka] bootstrap_servers / "
        f"STREAMSCORE__KAFKA__BOOTSTRAP_SERVERS at a running cluster"
    )
