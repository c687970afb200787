"""A model's objects in S3-compatible object storage (``s3://bucket/prefix/<name>/``).

Same guarantees as the folder store, from conditional writes instead of a lock:

* a version number is claimed by creating ``claims/<version>`` with ``If-None-Match: *``; a
  writer that loses the race takes the next number. Its files are then created (never
  overwritten) and ``<version>/manifest.json`` last: a version without its manifest is a write
  that did not finish and is not listed, and its number stays taken;
* alias pointers are replaced with ``If-Match: <ETag read>`` (compare-and-swap), so of two
  concurrent moves one wins and the other re-reads and retries;
* reads of a pointer that has not changed cost a ``304 Not Modified`` without a body
  (``If-None-Match: <ETag>``).

boto3 reads credentials the way every AWS tool does (environment, ``AWS_PROFILE`` / ``profile``,
config files, instance roles); none are in streamscore's configuration, so none can be printed.
boto3 is imported only when an ``s3://`` store is opened: folder-store processes do not pay for
it.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from model_store.storage import NOT_MODIFIED, Blob, NotModified, StoreUnavailable, is_version_name
from streamscore.exceptions import ModelStoreError

SCHEME = "s3://"
CLAIMS = "claims/"
MANIFEST_FILE = "manifest.json"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: S3 answers a conditional write that lost with 412; some servers use 409 while another
#: conditional write on the key is in flight. Both mean "someone else got there first".
_CONFLICT_STATUS = (409, 412)


def is_s3_uri(root: object) -> bool:
    return isinstance(root, str) and root.startswith(SCHEME)


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix`` split into its bucket and key prefix (no trailing ``/``)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith(SCHEME):
            raise ModelStoreError(f"{uri!r} is not an s3:// URL (s3://bucket/prefix)")
        bucket, _, prefix = uri[len(SCHEME) :].partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise ModelStoreError(
                f"{uri!r}: {bucket!r} is not a valid bucket name (3-63 lower-case letters, "
                f"digits, '.' and '-'); write the root as s3://bucket/prefix"
            )
        return cls(bucket, prefix.strip("/"))

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, f"{self.prefix}/{name}" if self.prefix else name)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"


def redact_url(url: str) -> str:
    """``https://user:secret@host`` -> ``https://***@host``; other URLs unchanged."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class S3Options:
    """How to reach the object store. Credentials are not here: boto3 finds them."""

    endpoint_url: str = ""  # empty = AWS S3 of ``region``
    region: str = ""  # empty = boto3's default (AWS_REGION, profile, ...)
    profile: str = ""  # empty = AWS_PROFILE or the default profile
    request_timeout_ms: int = 5000
    max_attempts: int = 3

    def __repr__(self) -> str:
        return (
            f"S3Options(endpoint_url={redact_url(self.endpoint_url)!r}, region={self.region!r}, "
            f"profile={self.profile!r}, request_timeout_ms={self.request_timeout_ms}, "
            f"max_attempts={self.max_attempts})"
        )


@functools.lru_cache(maxsize=8)
def make_client(options: S3Options) -> Any:
    """A boto3 S3 client: path-style addressing for custom endpoints, short timeouts.

    One per set of options in a process (clients are thread-safe; making one costs ~0.3 s)."""
    import boto3
    from botocore.config import Config as BotoConfig

    session = boto3.session.Session(profile_name=options.profile or None)
    timeout_s = options.request_timeout_ms / 1000
    config = BotoConfig(
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        retries={"max_attempts": options.max_attempts, "mode": "standard"},
        s3={"addressing_style": "path" if options.endpoint_url else "auto"},
        # Checksums only where S3 requires them: S3-compatible servers differ in support.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return session.client(
        "s3",
        endpoint_url=options.endpoint_url or None,
        region_name=options.region or None,
        config=config,
    )


class S3Storage:
    """One model's objects under ``s3://bucket/prefix/<name>/``."""

    locks_writers = False

    def __init__(self, location: S3Location, client: Any, *, endpoint_url: str = "") -> None:
        self.s3 = location
        self.client = client
        self.location = str(location)
        self.endpoint = redact_url(endpoint_url) if endpoint_url else "AWS S3"

    def __repr__(self) -> str:
        return f"S3Storage({self.location!r}, endpoint={self.endpoint!r})"

    def _key(self, key: str) -> str:
        return f"{self.s3.prefix}/{key}" if self.s3.prefix else key

    def where(self, key: str) -> str:
        return f"{self.location}/{key}"

    # ------------------------------------------------------------------ errors

    @contextlib.contextmanager
    def _translated(self, action: str, key: str) -> Iterator[None]:
        """botocore's errors as :class:`StoreUnavailable` / :class:`ModelStoreError`."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            yield
        except NoCredentialsError as exc:
            raise ModelStoreError(
                f"no credentials to {action} {self.where(key)}: set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE / [model_store] profile"
            ) from exc
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                raise ModelStoreError(
                    f"bucket {self.s3.bucket!r} does not exist at {self.endpoint}; create it, "
                    f"or fix [model_store] root / endpoint_url"
                ) from exc
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or (
                status == 403
            ):
                raise ModelStoreError(
                    f"access denied to {action} {self.where(key)} ({code}); check the "
                    f"credentials (environment or profile) and the bucket policy"
                ) from exc
            if isinstance(status, int) and status >= 500:
                raise StoreUnavailable(
                    f"object store {self.endpoint} failed to {action} {self.where(key)} "
                    f"(HTTP {status} {code}); it is retried"
                ) from exc
            raise ModelStoreError(
                f"object store {self.endpoint} refused to {action} {self.where(key)}: "
                f"{code or status} ({exc})"
            ) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(
                f"object store {self.endpoint} unreachable ({type(exc).__name__}: {exc}) "
                f"while trying to {action} {self.where(key)}; check [model_store] endpoint_url "
                f"and the network"
            ) from exc

    @staticmethod
    def _status(exc: Exception) -> int | None:
        response = getattr(exc, "response", None) or {}
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None

    # ------------------------------------------------------------------ the protocol

    def read(self, key: str, *, if_none_match: str | None = None) -> Blob | NotModified | None:
        from botocore.exceptions import ClientError

        args: dict[str, Any] = {"Bucket": self.s3.bucket, "Key": self._key(key)}
        if if_none_match is not None:
            args["IfNoneMatch"] = if_none_match
        with self._translated("read", key):
            try:
                response = self.client.get_object(**args)
            except ClientError as exc:
                status = self._status(exc)
                if status == 304:
                    return NOT_MODIFIED
                if status == 404:
                    code = exc.response.get("Error", {}).get("Code", "")
                    if code == "NoSuchBucket":
                        raise
                    return None
                raise
            with contextlib.closing(response["Body"]) as body:
                data = body.read()
        return Blob(data, str(response["ETag"]))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._translated("look up", key):
            try:
                self.client.head_object(Bucket=self.s3.bucket, Key=self._key(key))
            except ClientError as exc:
                if self._status(exc) == 404:
                    return False
                raise
        return True

    def _put(self, key: str, data: bytes, condition: dict[str, str]) -> bool:
        from botocore.exceptions import ClientError

        with self._translated("write", key):
            try:
                self.client.put_object(
                    Bucket=self.s3.bucket, Key=self._key(key), Body=data, **condition
                )
            except ClientError as exc:
                status = self._status(exc)
                if status in _CONFLICT_STATUS or (status == 404 and "IfMatch" in condition):
                    return False
                raise
        return True

    def create(self, key: str, data: bytes) -> bool:
        return self._put(key, data, {"IfNoneMatch": "*"})

    def replace(self, key: str, data: bytes, *, etag: str | None) -> bool:
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        return self._put(key, data, condition)

    def keys(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        strip = len(self._key(""))
        out: list[str] = []
        with self._translated("list", prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.s3.bucket, Prefix=full):
                out.extend(str(item["Key"])[strip:] for item in page.get("Contents", ()))
        return sorted(out)

    def publish(self, version: int, files: Mapping[str, bytes]) -> bool:
        """Claim the number, create the files, the last one (the manifest) last."""
        if not self.create(f"{CLAIMS}{version}", b""):
            return False
        for name, data in files.items():
            key = f"{version}/{name}"
            if not self.create(key, data):
                raise ModelStoreError(
                    f"{self.where(key)} already exists although this writer claimed "
                    f"v{version}: something outside streamscore writes into {self.location}; "
                    f"nothing was overwritten, register again"
                )
        return True

    def versions(self) -> list[int]:
        found = []
        for key in self.keys(""):
            head, _, tail = key.partition("/")
            if tail == MANIFEST_FILE and is_version_name(head):
                found.append(int(head))
        return sorted(found)

    def claimed_versions(self) -> set[int]:
        claimed = {
            int(key[len(CLAIMS) :])
            for key in self.keys(CLAIMS)
            if is_version_name(key[len(CLAIMS) :])
        }
        return claimed | set(self.versions())

    def writer_lock(self, *, timeout_ms: int, what: str) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()
