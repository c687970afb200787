"""Apache Kafka itself: one KRaft node (broker and controller), from Maven Central.

:class:`KafkaBroker` runs ``kafka.Kafka`` 4.4.0 on ``host:port``:

* The jars come from the pinned Maven project ``broker/maven/pom.xml`` (``kafka_2.13`` and its
  runtime dependencies, nothing else), copied once by :func:`resolve_kafka_libs` into
  ``~/.cache/streamscore/kafka-4.4.0/lib`` (``$XDG_CACHE_HOME`` is honoured). That needs
  ``java`` (17 or newer) and ``mvn`` on ``PATH``; the error says how to install them.
* :meth:`~KafkaBroker.start` writes ``<run_dir>/kafka/server.properties`` (single node, every
  internal topic with replication factor 1, group initial rebalance delay 0, a static
  one-voter controller quorum on a second port), formats ``<run_dir>/kafka/data`` once
  (``kafka.tools.StorageTool format``), launches the JVM logging to ``<run_dir>/kafka.log``,
  records it in ``<run_dir>/kafka.pid`` (JSON) and returns once the port answers a Kafka
  ``Metadata`` request advertising ``host:port``.
* :meth:`~KafkaBroker.stop` sends SIGTERM (a controlled shutdown, ~3 s), then SIGKILL.

Unlike the embedded Tansu broker, Kafka keeps its log on disk: a restart on the same
``run_dir`` keeps every topic, record and committed offset. The controller port may change
between starts (the voter set is static configuration, not stored in the log).

Measured on this project's machines (2 cores, 24 GiB, OpenJDK 17, heavily shared): first start
including the jar download 2 min 17 s with an empty ~/.m2 (10 s from a warm one), then 10-20 s
per start (format 4-12 s on a fresh folder, JVM start 8-17 s; 56 s seen at load 13), stop
0.6-3 s, RSS 330-370 MiB with the default 512 MiB heap.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from broker.tansu import free_port, kafka_answers, port_is_free
from streamscore import jsonio
from streamscore.exceptions import BrokerError

KAFKA_VERSION = "4.4.0"
"""The Apache Kafka release ``broker/maven/pom.xml`` pins (change both together)."""
POM_PATH = Path(__file__).with_name("maven") / "pom.xml"

PID_FILE = "kafka.pid"
LOG_FILE = "kafka.log"
LOCK_FILE = "kafka.lock"
STATE_DIR = "kafka"
"""Under ``run_dir``: server.properties, log4j2.properties and the data folder."""

DEFAULT_HEAP_MB = 512
"""JVM heap (-Xms = -Xmx/2): enough for the suite and the benchmark on one node."""
MIN_JAVA = 17
_COMPLETE = ".complete"
_MAIN_CLASS = "kafka.Kafka"
_INSTALL_HINT = (
    "install them (Debian: apt-get install openjdk-17-jre-headless maven), or use the "
    "embedded broker (--engine tansu)"
)

#: Brokers this process launched, by pid: lets ``stop`` reap its own children (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


# --------------------------------------------------------------------------- jars


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/streamscore`` (default ``~/.cache/streamscore``)."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "streamscore"


def missing_tools() -> str | None:
    """Why Kafka cannot run here (no ``java`` 17+ or no ``mvn``), or None when it can."""
    java = shutil.which("java")
    if java is None:
        return f"no `java` on PATH (Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+)"
    major = java_major_version(java)
    if major is not None and major < MIN_JAVA:
        return f"`{java}` is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+"
    if shutil.which("mvn") is None and not _libs_complete(cache_root() / _lib_folder()):
        return "no `mvn` on PATH (it fetches the Kafka jars from Maven Central, once)"
    return None


def java_major_version(java: str = "java") -> int | None:
    """The major version ``java -version`` reports (``17`` for ``17.0.15``), or None."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def _lib_folder() -> str:
    return f"kafka-{KAFKA_VERSION}"


def _pom_digest() -> str:
    return hashlib.sha256(POM_PATH.read_bytes()).hexdigest()


def _libs_complete(root: Path) -> bool:
    marker = root / "lib" / _COMPLETE
    try:
        return marker.read_text(encoding="utf-8").strip() == _pom_digest()
    except OSError:
        return False


def resolve_kafka_libs(cache_dir: Path | None = None, *, timeout_s: float = 1800) -> Path:
    """The folder of Kafka's jars, copied there by Maven the first time (minutes; then instant).

    The copy goes to a temporary folder renamed into place, with a marker holding the pom's
    checksum: an interrupted download is never used, and editing the pom fetches again.
    Concurrent callers (two test sessions) wait for one download.
    """
    root = (cache_dir or cache_root()) / _lib_folder()
    if _libs_complete(root):
        return root / "lib"
    reason = missing_tools()
    if reason is not None:
        raise BrokerError(f"cannot run Apache Kafka: {reason}; {_INSTALL_HINT}")
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if _libs_complete(root):
                return root / "lib"
            staging = Path(tempfile.mkdtemp(prefix=".lib-", dir=root))
            try:
                _copy_dependencies(staging, timeout_s)
                (staging / _COMPLETE).write_text(_pom_digest() + "\n", encoding="utf-8")
                shutil.rmtree(root / "lib", ignore_errors=True)
                os.replace(staging, root / "lib")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return root / "lib"


def _copy_dependencies(target: Path, timeout_s: float) -> None:
    argv = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM_PATH),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={target}",
    ]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(
            f"`{' '.join(argv)}` did not finish within {timeout_s:g} s; is Maven Central "
            f"reachable (check ~/.m2/settings.xml proxies)?"
        ) from exc
    if out.returncode != 0 or not any(target.glob("kafka_2.13-*.jar")):
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise BrokerError(
            f"Maven could not fetch Apache Kafka {KAFKA_VERSION} (exit {out.returncode}); "
            f"`{' '.join(argv)}` said:\n{tail}"
        )


# --------------------------------------------------------------------------- process checks


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")[:-1] or None


def is_kafka_broker(pid: int, properties: Path) -> bool:
    """True when ``pid`` is a live ``kafka.Kafka`` JVM run with ``properties`` (no pid reuse)."""
    argv = _cmdline(pid) or []
    return _MAIN_CLASS in argv and str(properties) in argv


def _process_gone(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:  # ours: gone once reaped (a zombie still shows in /proc)
        if child.poll() is None:
            return False
        del _CHILDREN[pid]
        return True
    return _cmdline(pid) is None


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 characters),
    never starting with ``-`` (``kafka-storage format --cluster-id -x...`` reads it as an
    option and exits 2; Kafka's own ``Uuid.randomUuid`` redraws such ids too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


# --------------------------------------------------------------------------- the broker


@dataclass(frozen=True)
class KafkaStatus:
    """A running Kafka broker, as recorded in its pid file."""

    pid: int
    host: str
    port: int
    controller_port: int
    started_at: float
    """Unix time (seconds) the JVM was launched."""
    ready_after_s: float
    """Seconds from launch (format included) until it answered a metadata request."""
    already_running: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uptime_s(self) -> float:
        return max(time.time() - self.started_at, 0.0)

    def describe(self) -> str:
        """``Apache Kafka 4.4.0, pid 4242, 127.0.0.1:9092``."""
        return f"Apache Kafka {KAFKA_VERSION}, pid {self.pid}, {self.address}"


class KafkaBroker:
    """One Apache Kafka node on ``host:port`` (controller on ``controller_port``), in ``run_dir``.

    ``port=0`` / ``controller_port=0`` choose free ports when started. Used as a context manager
    it starts a broker owned by this process and stops it on exit.
    """

    def __init__(
        self,
        *,
        run_dir: Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
        controller_port: int = 0,
        heap_mb: int = DEFAULT_HEAP_MB,
        start_timeout_ms: int = 180_000,
        cache_dir: Path | None = None,
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.controller_port = controller_port
        self.heap_mb = heap_mb
        self.start_timeout_ms = start_timeout_ms
        self.cache_dir = cache_dir

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def state_dir(self) -> Path:
        return self.run_dir / STATE_DIR

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def properties_file(self) -> Path:
        return self.state_dir / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.run_dir / LOG_FILE

    # ------------------------------------------------------------------ status

    def status(self) -> KafkaStatus | None:
        """The recorded broker if it still runs; removes a stale pid file."""
        try:
            record = jsonio.loads(self.pid_file.read_bytes())
            current = KafkaStatus(**record)
        except (OSError, jsonio.JSONDecodeError, TypeError):
            return None
        if is_kafka_broker(current.pid, self.properties_file):
            return current
        self.pid_file.unlink(missing_ok=True)
        return None

    # ------------------------------------------------------------------ start

    def start(self, *, detach: bool = True) -> KafkaStatus:
        """Start the broker (idempotent) and return once it answers on ``host:port``.

        ``detach`` puts the JVM in its own session so it outlives this process (the CLI);
        tests keep it attached.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            current = self.status()
            if current is not None:
                return KafkaStatus(**{**asdict(current), "already_running": True})
            if not port_is_free(self.host, self.port):
                raise BrokerError(
                    f"port {self.port} on {self.host} is in use by another process; stop it "
                    f"or choose another port (--port, or [broker] port)"
                )
            libs = resolve_kafka_libs(self.cache_dir)
            started_at = time.time()
            t0 = time.monotonic()
            self._write_config()
            if not (self.data_dir / "meta.properties").is_file():
                self._format(libs)
            process = self._launch(libs, detach=detach)
            try:
                self._wait_ready(process)
            except BaseException:  # a failed start, or Ctrl-C while waiting: leave nothing
                self._kill(process)
                raise
            status = KafkaStatus(
                pid=process.pid,
                host=self.host,
                port=self.port,
                controller_port=self.controller_port,
                started_at=started_at,
                ready_after_s=round(time.monotonic() - t0, 2),
            )
            record = {k: v for k, v in asdict(status).items() if k != "already_running"}
            tmp = self.pid_file.with_name(f".{PID_FILE}.{os.getpid()}.tmp")
            tmp.write_bytes(jsonio.dumps_pretty(record))
            os.replace(tmp, self.pid_file)
            return status

    def _write_config(self) -> None:
        if not self.controller_port or not port_is_free(self.host, self.controller_port):
            self.controller_port = free_port(self.host)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        settings = server_properties(
            host=self.host,
            port=self.port,
            controller_port=self.controller_port,
            data_dir=self.data_dir,
        )
        self.properties_file.write_text(
            "".join(f"{key}={value}\n" for key, value in settings.items()), encoding="utf-8"
        )
        (self.state_dir / "log4j2.properties").write_text(_LOG4J2, encoding="utf-8")

    def _java_argv(self, libs: Path, main: str, *args: str, server: bool) -> list[str]:
        heap = (
            [f"-Xms{self.heap_mb // 2}m", f"-Xmx{self.heap_mb}m", "-XX:+UseG1GC"]
            if server
            else ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
        )
        return [
            shutil.which("java") or "java",
            *heap,
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _format(self, libs: Path) -> None:
        argv = self._java_argv(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            new_cluster_id(),
            "--config",
            str(self.properties_file),
            "--ignore-formatted",
            server=False,
        )
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=self.start_timeout_ms / 1000, check=False
        )
        if out.returncode != 0:
            tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-10:])
            raise BrokerError(
                f"formatting the Kafka storage {self.data_dir} failed (exit {out.returncode}); "
                f"remove the folder to start afresh:\n{tail}"
            )

    def _launch(self, libs: Path, *, detach: bool) -> subprocess.Popen[bytes]:
        argv = self._java_argv(libs, _MAIN_CLASS, str(self.properties_file), server=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "JAVA_TOOL"))}
        self._rotate_log()
        with self.log_file.open("ab") as log:
            log.write(f"--- streamscore: starting {' '.join(argv)}\n".encode())
            log.flush()
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
                raise BrokerError(f"could not run java for Apache Kafka: {exc}") from exc
        _CHILDREN[process.pid] = process
        return process

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout_ms / 1000
        while not kafka_answers(self.host, self.port, timeout_s=1.0):
            if process.poll() is not None:
                raise BrokerError(
                    f"Apache Kafka exited during start (code {process.returncode}) on "
                    f"{self.address}; {self.log_file}:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"Apache Kafka did not answer on {self.address} within "
                    f"{self.start_timeout_ms} ms and was killed; {self.log_file}:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.1)

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.kill()
            process.wait()
        _CHILDREN.pop(process.pid, None)

    # ------------------------------------------------------------------ stop

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM (controlled shutdown), then SIGKILL after ``timeout_s``; False if not running."""
        if not self.run_dir.is_dir():
            return False
        with self._locked():
            current = self.status()
            if current is None:
                return False
            self._signal(current.pid, signal.SIGTERM)
            if not self._wait_gone(current.pid, timeout_s):
                self._signal(current.pid, signal.SIGKILL)
                if not self._wait_gone(current.pid, 10.0):
                    raise BrokerError(
                        f"Apache Kafka (pid {current.pid}) survived SIGKILL; "
                        f"{self.pid_file} is kept"
                    )
            self.pid_file.unlink(missing_ok=True)
            return True

    def kill(self) -> bool:
        """SIGKILL the recorded broker (a crash, for tests); its data folder is kept."""
        with self._locked():
            current = self.status()
            if current is None:
                return False
            self._signal(current.pid, signal.SIGKILL)
            self._wait_gone(current.pid, 10.0)
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
            time.sleep(0.05)
        return True

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> KafkaBroker:
        status = self.start(detach=False)
        if status.already_running:
            raise BrokerError(
                f"a Kafka broker is already running from {self.run_dir} ({status.describe()}); "
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
            self.stop(timeout_s=5.0)

    # ------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.run_dir / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _rotate_log(self, max_bytes: int = 20 * 1024 * 1024) -> None:
        with contextlib.suppress(OSError):
            if self.log_file.stat().st_size > max_bytes:
                os.replace(self.log_file, self.log_file.with_name(LOG_FILE + ".1"))

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        kept = [line for line in text.splitlines() if line.strip()]
        return "\n".join(kept[-lines:]) or "(empty log)"


def server_properties(
    *, host: str, port: int, controller_port: int, data_dir: Path
) -> dict[str, str]:
    """The ``server.properties`` of a single-node KRaft broker+controller for tests and demos."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "4",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Tests use 2-6 s sessions (the default minimum, 6 s, would refuse them).
        "group.min.session.timeout.ms": "500",
        "auto.create.topics.enable": "true",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.retention.hours": "24",
    }


_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
"""


@contextlib.contextmanager
def run_kafka_broker(
    run_dir: Path | str | None = None, *, port: int = 0, heap_mb: int = DEFAULT_HEAP_MB
) -> Iterator[KafkaBroker]:
    """A Kafka broker owned by this process, stopped on exit (tests, benchmarks).

    ``run_dir=None`` uses a temporary folder removed afterwards (with the data).
    """
    with contextlib.ExitStack() as stack:
        if run_dir is None:
            run_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="kafka-"))
        yield stack.enter_context(KafkaBroker(run_dir=run_dir, port=port, heap_mb=heap_mb))
