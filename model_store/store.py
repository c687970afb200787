"""The versioned model store: ``<root>/<name>/<version>/{model.skops, manifest.json}``.

Layout of one model in a folder (the default)::

    <root>/<name>/
        .lock                    fcntl lock: one writer (register, promote, rollback) at a time
        .tmp-<uuid>/             a version being written; renamed to <version>/ when complete
        1/model.skops            the artifact (skops; model.joblib in stores written before)
        1/manifest.json          what it is, how it was made, the sha256 of every file,
                                 and its signature when [model_store] signing_key is set
        1/examples.jsonl ...     extra files stored with the version (``register(files=)``)
        aliases/production.json  {alias, version, seq, updated_at}, replaced atomically
        aliases/history.jsonl    every alias move, append-only

With ``root = "s3://bucket/prefix"`` the same keys live in object storage, with conditional
writes in place of the lock (:mod:`model_store.s3_storage`, :mod:`model_store.object_aliases`):
``claims/<version>`` reserves a number, the manifest is written last, and the alias history is
one object per move under ``aliases/history/``. The store reaches its objects only through
:class:`model_store.storage.Storage`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import logging
import platform
import re
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_store import artifact as artifacts
from model_store import signing
from model_store.aliases import AliasBook, AliasEvent, AliasMovedOn, check_alias, is_alias
from model_store.artifact import ArtifactPolicy
from model_store.artifact_cache import ArtifactCache
from model_store.local_storage import LocalStorage
from model_store.manifest import (
    ARTIFACT_FILE,
    LIBRARIES,
    MANIFEST_FILE,
    DataFingerprint,
    FeatureSpec,
    ImportRecord,
    Manifest,
    check_schema,
    plain,
)
from model_store.object_aliases import AliasConflict, ObjectAliasBook
from model_store.s3_storage import S3Location, S3Options, S3Storage, is_s3_uri, make_client
from model_store.storage import Blob, Storage, StoreUnavailable
from streamscore import jsonio
from streamscore.exceptions import (
    IntegrityError,
    ModelStoreError,
    NoHistoryError,
    VersionNotFound,
)

if TYPE_CHECKING:
    from streamscore.config import Config, Secret

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Registrations retried after another writer claimed the same version number first.
MAX_CLAIM_ATTEMPTS = 50


@dataclass(frozen=True)
class LoadedModel:
    manifest: Manifest
    model: Any  # the estimator or pipeline, rebuilt from its verified artifact


@dataclass(frozen=True)
class VerifyResult:
    version: int
    ok: bool
    problem: str = ""


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def library_versions() -> dict[str, str]:
    """Versions of the libraries an artifact depends on, as recorded in manifests."""
    out = {"python": platform.python_version()}
    for dist in LIBRARIES[1:]:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            out[dist] = "unknown"
    return out


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def current_git_commit(cwd: Path | None = None) -> str | None:
    """The commit checked out at ``cwd``, or None without git or outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--verify", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class ModelStore:
    """Versions, aliases and verified loading for one model name."""

    def __init__(
        self,
        root: Path | str,
        name: str,
        *,
        lock_timeout_ms: int = 30_000,
        allow_version_mismatch: bool = False,
        s3: S3Options | None = None,
        cache_dir: Path | None = None,
        retry_backoff_ms: int = 500,
        max_retry_backoff_ms: int = 10_000,
        policy: ArtifactPolicy | None = None,
        signing_key: Secret | None = None,
    ) -> None:
        """``root`` is a folder, or ``s3://bucket/prefix`` (reached with ``s3`` options).

        ``cache_dir``: artifacts :meth:`load` reads are kept there (a worker downloads each
        version once) and verified again on every load."""
        if not NAME_PATTERN.fullmatch(name) or ".." in name:
            raise ModelStoreError(
                f"invalid model name {name!r}: use letters, digits, '.', '-' and '_', "
                f"starting with a letter or digit (e.g. breast-cancer)"
            )
        self.name = name
        self.lock_timeout_ms = lock_timeout_ms
        self.allow_version_mismatch = allow_version_mismatch
        self.storage: Storage
        self.book: AliasBook | ObjectAliasBook
        if is_s3_uri(root):
            options = s3 or S3Options()
            location = S3Location.parse(str(root))
            self.root: Path | str = str(location)
            self.folder: Path | None = None
            self.storage = S3Storage(
                location.child(name), make_client(options), endpoint_url=options.endpoint_url
            )
            self.book = ObjectAliasBook(self.storage)
        else:
            self.root = Path(root)
            self.folder = self.root / name
            self.storage = LocalStorage(self.folder)
            self.book = AliasBook(self.folder / "aliases")
        self.location = self.storage.location
        self.cache = ArtifactCache(Path(cache_dir) / name) if cache_dir is not None else None
        self._watch = _Backoff(retry_backoff_ms, max_retry_backoff_ms)
        self.policy = policy or ArtifactPolicy()
        self._signing_key = signing_key

    @classmethod
    def from_config(cls, cfg: Config) -> ModelStore:
        """The store named by ``[model_store]``."""
        s = cfg.model_store
        remote = is_s3_uri(s.root)
        return cls(
            s.root,
            s.model_name,
            lock_timeout_ms=s.lock_timeout_ms,
            allow_version_mismatch=s.allow_version_mismatch,
            s3=S3Options(
                endpoint_url=s.endpoint_url,
                region=s.region,
                profile=s.profile,
                request_timeout_ms=s.request_timeout_ms,
            )
            if remote
            else None,
            cache_dir=s.cache_dir if remote else None,
            retry_backoff_ms=s.retry_backoff_ms,
            max_retry_backoff_ms=s.max_retry_backoff_ms,
            policy=ArtifactPolicy(tuple(s.trusted_types), s.allow_pickle),
            signing_key=s.signing_key,
        )

    def __repr__(self) -> str:
        return f"ModelStore({self.storage.location!r})"

    # ------------------------------------------------------------------ reading

    def _version_numbers(self) -> list[int]:
        """Complete versions; writes in progress (``.tmp-*`` folders, or objects without their
        manifest) are not versions."""
        return self.storage.versions()

    def versions(self) -> list[Manifest]:
        """Every readable version, ascending; unreadable ones are skipped with a warning."""
        out = []
        for version in self._version_numbers():
            try:
                out.append(self._read_manifest(version))
            except ModelStoreError as exc:
                log.warning("skipping %s v%d: %s", self.name, version, exc)
        return out

    def aliases(self) -> dict[str, int]:
        """Alias -> version."""
        return self.book.all()

    def alias_state(self, alias: str) -> tuple[int, int] | None:
        """``(version, seq)`` of an alias, None if unset. One small file read (on S3 a
        conditional GET, ``304`` while unchanged): poll it.

        While the store is unreachable (:class:`StoreUnavailable`) the calls in between
        retries, which back off from ``retry_backoff_ms`` doubling to ``max_retry_backoff_ms``,
        fail at once without a request, with the last error."""
        self._watch.before_attempt()
        try:
            state = self.book.state(alias)
        except StoreUnavailable as exc:
            self._watch.failed(exc, self.location)
            raise
        self._watch.succeeded(self.location)
        return state

    def history(self, alias: str | None = None) -> list[AliasEvent]:
        """Alias moves, oldest first."""
        return self.book.history(alias)

    def resolve(self, ref: int | str) -> int:
        """The version number meant by ``3``, ``"3"`` or an alias name."""
        if isinstance(ref, int) or (ref.isascii() and ref.isdigit()):
            version = int(ref)
            known = self._version_numbers()
            if version in known:
                return version
            raise VersionNotFound(
                f"{self.name} has no version {version} (versions: {_listing(known)}) "
                f"in {self.location}"
            )
        state = self.book.state(ref) if is_alias(ref) else None
        if state is None:
            raise VersionNotFound(
                f"{self.name} has no alias {ref!r} (aliases: {_listing(sorted(self.aliases()))}, "
                f"versions: {_listing(self._version_numbers())}); give a version number, or set "
                f"the alias with `streamscore models promote VERSION --alias {ref}`"
            )
        return state[0]

    def manifest(self, ref: int | str) -> Manifest:
        """The manifest of a version or alias (:class:`IntegrityError` if unreadable)."""
        return self._read_manifest(self.resolve(ref))

    def _read_manifest(self, version: int) -> Manifest:
        key = f"{version}/{MANIFEST_FILE}"
        path = self.storage.where(key)
        blob = self.storage.read(key)
        if not isinstance(blob, Blob):
            raise IntegrityError(
                f"{path} is missing: {self.name} v{version} cannot be verified, so it is not "
                f"loaded; register the model again"
            )
        try:
            data = jsonio.loads(blob.data)
        except jsonio.JSONDecodeError as exc:
            raise IntegrityError(
                f"{path}: not valid JSON ({exc}); register the model again"
            ) from exc
        if not isinstance(data, dict):
            raise IntegrityError(f"{path}: not a JSON object; register the model again")
        if self._signing_key:
            signing.verify(data, self._signing_key, what=f"{self.name} v{version} ({path})")
        manifest = Manifest.from_dict(data, where=str(path))
        if (manifest.name, manifest.version) != (self.name, version):
            raise IntegrityError(
                f"{path} describes {manifest.label}, not {self.name} v{version}: the folder "
                f"was copied or renamed by hand; register the model again"
            )
        for name in (manifest.artifact, *manifest.files):
            if Path(name).name != name or name in ("", ".", ".."):
                raise IntegrityError(f"{path}: {name!r} must be a file name in the version folder")
        return manifest

    # ------------------------------------------------------------------ verified loading

    def _artifact_key(self, manifest: Manifest) -> str:
        return f"{manifest.version}/{manifest.artifact}"

    def _read_artifact(self, manifest: Manifest) -> bytes:
        key = self._artifact_key(manifest)
        blob = self.storage.read(key)
        if not isinstance(blob, Blob):
            raise IntegrityError(
                f"{self.storage.where(key)} is missing; {manifest.label} cannot be loaded"
            )
        return blob.data

    def _check_integrity(self, manifest: Manifest, artifact: str, actual_sha256: str) -> None:
        if actual_sha256 != manifest.sha256:
            raise IntegrityError(
                f"{artifact}: sha256 {actual_sha256[:16]}... does not match the manifest's "
                f"{manifest.sha256[:16]}...: the artifact changed after it was registered and "
                f"{manifest.label} will not be loaded; register the model again"
            )
        trained = manifest.libraries.get("scikit-learn", "unknown")
        running = library_versions()["scikit-learn"]
        if _major_minor(trained) == _major_minor(running):
            return
        if not self.allow_version_mismatch:
            raise IntegrityError(
                f"{manifest.label} was trained with scikit-learn {trained}, this process runs "
                f"{running}; retrain it, or set [model_store] allow_version_mismatch = true "
                f"to load it anyway"
            )
        log.warning(
            "%s was trained with scikit-learn %s, this process runs %s; loading it anyway "
            "(allow_version_mismatch)",
            manifest.label,
            trained,
            running,
        )

    def check(self, ref: int | str) -> Manifest:
        """Verify a version without loading it: signature, manifest, checksums, scikit-learn
        version, and that its format and types are ones this store loads."""
        manifest = self.manifest(ref)
        blob = self._verified_artifact(manifest, cached=False)  # the store's bytes, not a copy
        artifacts.check_loadable(blob, manifest.artifact, self.policy, what=manifest.label)
        for name in manifest.files:
            self.read_file(manifest, name)
        return manifest

    def _verified_artifact(self, manifest: Manifest, *, cached: bool = True) -> bytes:
        """The artifact's bytes, checked against the manifest. With a cache (and ``cached``),
        downloaded once into it; a cached copy that no longer matches is dropped and
        downloaded again."""
        artifact = self.storage.where(self._artifact_key(manifest))
        if self.cache is None or not cached:
            blob = self._read_artifact(manifest)
        else:
            blob = self.cache.get(manifest, lambda: self._read_artifact(manifest))
            artifact = f"{artifact} (cached as {self.cache.path(manifest)})"
        self._check_integrity(manifest, artifact, hashlib.sha256(blob).hexdigest())
        return blob

    def read_file(self, ref: int | str | Manifest, name: str) -> bytes:
        """An extra file of a version (see ``register(files=)``), checked against the sha256
        its manifest lists; :class:`IntegrityError` if it is not listed, missing or changed."""
        manifest = ref if isinstance(ref, Manifest) else self.manifest(ref)
        expected = manifest.files.get(name)
        if expected is None:
            listed = ", ".join(sorted(manifest.files)) or "none"
            raise IntegrityError(
                f"{manifest.label} has no file {name!r} (its manifest lists: {listed})"
            )
        key = f"{manifest.version}/{name}"
        path = self.storage.where(key)
        blob = self.storage.read(key)
        if not isinstance(blob, Blob):
            raise IntegrityError(f"{path} is missing; {manifest.label} cannot be verified")
        data = blob.data
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise IntegrityError(
                f"{path}: sha256 {actual[:16]}... does not match the manifest's "
                f"{expected[:16]}...: it changed after {manifest.label} was registered; "
                f"register the model again"
            )
        return data

    def load(self, ref: int | str) -> LoadedModel:
        """Verify, then rebuild the model. The bytes checked are the bytes loaded (read once);
        untrusted types and pickles (unless allowed) are refused before anything is built."""
        manifest = self.manifest(ref)
        blob = self._verified_artifact(manifest)
        model = artifacts.loads(blob, manifest.artifact, self.policy, what=manifest.label)
        return LoadedModel(manifest, model)

    def verify(self) -> list[VerifyResult]:
        """Re-check every version folder (checksum, manifest, scikit-learn version)."""
        results = []
        for version in self._version_numbers():
            try:
                self.check(version)
            except ModelStoreError as exc:
                results.append(VerifyResult(version, False, str(exc)))
            else:
                results.append(VerifyResult(version, True))
        return results

    # ------------------------------------------------------------------ writing

    def register(
        self,
        model: Any,
        *,
        task: str,
        features: Sequence[FeatureSpec],
        classes: Sequence[Any] | None,
        metrics: Mapping[str, float],
        estimator: str,
        data: DataFingerprint | None = None,
        config: Mapping[str, Any] | None = None,
        git_commit: str | None = None,
        parent: int | None = None,
        aliases: Sequence[str] = ("candidate",),
        files: Mapping[str, bytes] | None = None,
        imported: ImportRecord | None = None,
        gate: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """Write a new version and point ``aliases`` at it.

        The model is always written in the skops format (refused if it needs a type the store
        does not trust). ``files`` are extra files stored with the version, name -> content
        (e.g. ``examples.jsonl``, a reference ``profile.json``): each is published with the
        version, listed with its sha256 in the manifest, verified by ``check`` and ``verify``,
        and read back with :meth:`read_file`.

        The model is serialised without the lock; numbering the version, publishing its files
        (a folder: ``.tmp-<uuid>/`` renamed into place; S3: a conditional claim, the manifest
        last) and moving the aliases happen under it (a folder) or by conditional writes (S3),
        so concurrent registrations get distinct versions.
        """
        check_schema(task, features, classes)
        for alias in aliases:
            check_alias(alias)
        extra = dict(files or {})
        for name in extra:
            _check_file_name(name)
        draft = self._draft(
            task=task,
            features=features,
            classes=classes,
            metrics=metrics,
            estimator=estimator,
            data=data,
            config=config,
            git_commit=git_commit,
            parent=parent,
            files=extra,
            imported=imported,
            gate=gate,
        )
        artifact, digest = self._write_artifact(model)
        with self._lock():
            manifest = self._publish(artifact, draft, digest, aliases, extra)
        log.info("registered %s (%s)", manifest.label, ", ".join(aliases) or "no alias")
        return manifest

    def _draft(
        self,
        *,
        task: str,
        features: Sequence[FeatureSpec],
        classes: Sequence[Any] | None,
        metrics: Mapping[str, float],
        estimator: str,
        data: DataFingerprint | None,
        config: Mapping[str, Any] | None,
        git_commit: str | None,
        parent: int | None,
        files: Mapping[str, bytes],
        imported: ImportRecord | None,
        gate: Mapping[str, Any] | None,
    ) -> Manifest:
        """The manifest without version, time and checksum; refused if not JSON-able."""
        draft = Manifest(
            name=self.name,
            version=0,
            created_at="",
            task=task,
            estimator=str(estimator),
            libraries=library_versions(),
            artifact=ARTIFACT_FILE,
            sha256="",
            features=tuple(features),
            classes=tuple(plain(c) for c in classes) if classes is not None else None,
            metrics={str(k): float(v) for k, v in metrics.items()},
            data=data,
            config=dict(config or {}),
            git_commit=git_commit,
            parent=parent,
            files={name: hashlib.sha256(content).hexdigest() for name, content in files.items()},
            imported=imported,
            gate=dict(gate) if gate is not None else None,
        )
        try:
            jsonio.dumps(draft.to_dict())
        except TypeError as exc:
            raise ModelStoreError(
                f"the manifest of {self.name} cannot be written as JSON ({exc}); pass plain "
                f"str/int/float/bool/list/dict values in config and classes"
            ) from exc
        return draft

    def _write_artifact(self, model: Any) -> tuple[bytes, str]:
        """``model`` serialised as skops, and its sha256."""
        artifact = artifacts.dumps(model, self.policy, what=self.name)
        return artifact, hashlib.sha256(artifact).hexdigest()

    def _publish(
        self,
        artifact: bytes,
        draft: Manifest,
        digest: str,
        aliases: Sequence[str],
        extra: Mapping[str, bytes],
    ) -> Manifest:
        """Under the lock (a folder store): number the version, publish its files with the
        (signed, when a key is set) manifest last (:meth:`Storage.publish`; a number another
        writer took first is skipped) and point ``aliases`` at it."""
        for _ in range(MAX_CLAIM_ATTEMPTS):
            version = self._next_version()
            manifest = dataclasses.replace(
                draft, version=version, created_at=utc_now(), sha256=digest
            )
            written = manifest.to_dict()
            if self._signing_key:
                written = signing.signed(written, self._signing_key)
            files = {
                ARTIFACT_FILE: artifact,
                **extra,
                MANIFEST_FILE: jsonio.dumps_pretty(written),  # last: the commit
            }
            if self.storage.publish(version, files):
                break
        else:
            raise ModelStoreError(
                f"{self.name}: other writers took {MAX_CLAIM_ATTEMPTS} version numbers in a "
                f"row while this registration tried to claim one in {self.location}; "
                f"register again"
            )
        for alias in dict.fromkeys(aliases):
            try:
                self.book.move(
                    alias, version, action="register", at=manifest.created_at, forward_only=True
                )
            except AliasMovedOn as exc:  # a later registration finished first
                log.info("registered %s: %s", manifest.label, exc)
        return manifest

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        """The folder store's writer lock; a no-op on object storage (conditional writes)."""
        return self.storage.writer_lock(
            timeout_ms=self.lock_timeout_ms, what=f"model {self.name!r}"
        )

    def _next_version(self) -> int:
        """One above every version that exists, was ever claimed or ever had an alias
        (numbers are not reused)."""
        used = self.storage.claimed_versions() | self.book.versions_named()
        return max(used, default=0) + 1

    def promote(self, ref: int | str, alias: str = "production", *, reason: str = "") -> AliasEvent:
        """Point ``alias`` at a verified version."""
        check_alias(alias)
        with self._lock():
            version = self.resolve(ref)
            self.check(version)
            event = self.book.move(alias, version, action="promote", at=utc_now(), reason=reason)
        log.info("%s: alias %r v%s -> v%d", self.name, alias, event.from_version, version)
        return event

    def rollback(self, alias: str = "production", *, reason: str = "") -> AliasEvent:
        """Return ``alias`` to the version it pointed at before the current one."""
        check_alias(alias)
        with self._lock():
            for attempt in range(MAX_CLAIM_ATTEMPTS):
                state = self.book.state(alias)
                stack = self.book.stack(alias)
                if len(stack) < 2:
                    where = f"points at v{stack[-1]}" if stack else "was never set"
                    raise NoHistoryError(
                        f"alias {alias!r} of {self.name} {where} and has no earlier version to "
                        f"roll back to; point it at a version with "
                        f"`streamscore models promote VERSION --alias {alias}`"
                    )
                target = stack[-2]
                try:
                    self.check(target)
                except ModelStoreError as exc:
                    raise IntegrityError(
                        f"cannot roll {alias!r} of {self.name} back to v{target}: {exc}; "
                        f"promote a sound version instead"
                    ) from exc
                try:
                    event = self.book.move(
                        alias,
                        target,
                        action="rollback",
                        at=utc_now(),
                        reason=reason,
                        expect_seq=state[1] if state else None,
                    )
                    break
                except AliasConflict:  # moved by another writer since planned: plan again
                    if attempt == MAX_CLAIM_ATTEMPTS - 1:
                        raise
        log.info(
            "%s: alias %r rolled back v%s -> v%d", self.name, alias, event.from_version, target
        )
        return event


def _check_file_name(name: str) -> None:
    reserved = (ARTIFACT_FILE, artifacts.JOBLIB_ARTIFACT, MANIFEST_FILE)
    if not name or Path(name).name != name or name.startswith(".") or name in reserved:
        raise ModelStoreError(
            f"extra file name {name!r} must be a plain file name (no folders, not hidden, not "
            f"{', '.join(reserved)}), e.g. examples.jsonl"
        )


def _listing(items: Sequence[Any]) -> str:
    return ", ".join(str(i) for i in items) if items else "none"


class _Backoff:
    """Spacing of retries against an unreachable store: doubling delays, logged once per
    outage (and when it ends)."""

    def __init__(self, first_ms: int, max_ms: int) -> None:
        self.first_s = first_ms / 1000
        self.max_s = max(max_ms, first_ms) / 1000
        self._lock = threading.Lock()
        self._delay_s = 0.0
        self._next_at = 0.0
        self._error: StoreUnavailable | None = None

    def before_attempt(self) -> None:
        with self._lock:
            error, next_at = self._error, self._next_at
        if error is not None and time.monotonic() < next_at:
            raise StoreUnavailable(f"{error} (next retry in {next_at - time.monotonic():.1f} s)")

    def failed(self, exc: StoreUnavailable, where: str) -> None:
        with self._lock:
            first = self._error is None
            self._delay_s = self.first_s if first else min(self._delay_s * 2, self.max_s)
            self._next_at = time.monotonic() + self._delay_s
            self._error = exc
            delay = self._delay_s
        if first:
            log.warning(
                "model store %s unreachable: %s; retrying every <= %.1f s", where, exc, self.max_s
            )
        else:
            log.debug("model store %s still unreachable; next retry in %.1f s", where, delay)

    def succeeded(self, where: str) -> None:
        if self._error is None:
            return
        with self._lock:
            self._error, self._delay_s, self._next_at = None, 0.0, 0.0
        log.info("model store %s reachable again", where)
