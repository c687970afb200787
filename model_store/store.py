"""The versioned model store: ``<root>/<name>/<version>/{model.joblib, manifest.json}``.

Layout of one model::

    <root>/<name>/
        .lock                    fcntl lock: one writer (register, promote, rollback) at a time
        .tmp-<uuid>/             a version being written; renamed to <version>/ when complete
        1/model.joblib           the artifact (joblib)
        1/manifest.json          what it is, how it was made, its sha256
        aliases/production.json  {alias, version, seq, updated_at}, replaced atomically
        aliases/history.jsonl    every alias move, append-only
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import io
import logging
import platform
import re
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib

from model_store.aliases import AliasBook, AliasEvent, check_alias, is_alias
from model_store.atomic import fsync_path
from model_store.checksum import file_sha256
from model_store.locking import exclusive_lock
from model_store.manifest import (
    ARTIFACT_FILE,
    LIBRARIES,
    MANIFEST_FILE,
    DataFingerprint,
    FeatureSpec,
    Manifest,
    check_schema,
    plain,
)
from streamscore import jsonio
from streamscore.exceptions import (
    IntegrityError,
    ModelStoreError,
    NoHistoryError,
    VersionNotFound,
)

if TYPE_CHECKING:
    from streamscore.config import Config

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class LoadedModel:
    manifest: Manifest
    model: Any  # the unpickled estimator or pipeline


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
        root: Path,
        name: str,
        *,
        lock_timeout_ms: int = 30_000,
        allow_version_mismatch: bool = False,
    ) -> None:
        if not NAME_PATTERN.fullmatch(name) or ".." in name:
            raise ModelStoreError(
                f"invalid model name {name!r}: use letters, digits, '.', '-' and '_', "
                f"starting with a letter or digit (e.g. breast-cancer)"
            )
        self.root = Path(root)
        self.name = name
        self.folder = self.root / name
        self.lock_timeout_ms = lock_timeout_ms
        self.allow_version_mismatch = allow_version_mismatch
        self.book = AliasBook(self.folder / "aliases")
        self._lock_file = self.folder / ".lock"

    @classmethod
    def from_config(cls, cfg: Config) -> ModelStore:
        """The store named by ``[model_store]``."""
        s = cfg.model_store
        return cls(
            s.root,
            s.model_name,
            lock_timeout_ms=s.lock_timeout_ms,
            allow_version_mismatch=s.allow_version_mismatch,
        )

    def __repr__(self) -> str:
        return f"ModelStore({str(self.folder)!r})"

    # ------------------------------------------------------------------ reading

    def _version_numbers(self) -> list[int]:
        """Complete version folders; ``.tmp-*`` folders (writes in progress) are not versions."""
        if not self.folder.is_dir():
            return []
        return sorted(
            int(p.name)
            for p in self.folder.iterdir()
            if p.name.isdigit() and not p.name.startswith("0") and p.is_dir()
        )

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
        """``(version, seq)`` of an alias, None if unset. One small file read: poll it."""
        return self.book.state(alias)

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
                f"in {self.folder}"
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
        path = self.folder / str(version) / MANIFEST_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(
                f"{path} is missing: {self.name} v{version} cannot be verified, so it is not "
                f"loaded; register the model again"
            ) from None
        try:
            data = jsonio.loads(raw)
        except jsonio.JSONDecodeError as exc:
            raise IntegrityError(
                f"{path}: not valid JSON ({exc}); register the model again"
            ) from exc
        if not isinstance(data, dict):
            raise IntegrityError(f"{path}: not a JSON object; register the model again")
        manifest = Manifest.from_dict(data, where=str(path))
        if (manifest.name, manifest.version) != (self.name, version):
            raise IntegrityError(
                f"{path} describes {manifest.label}, not {self.name} v{version}: the folder "
                f"was copied or renamed by hand; register the model again"
            )
        if Path(manifest.artifact).name != manifest.artifact or manifest.artifact in ("", "."):
            raise IntegrityError(
                f"{path}: artifact {manifest.artifact!r} must be a file name in the version folder"
            )
        return manifest

    # ------------------------------------------------------------------ verified loading

    def _artifact_path(self, manifest: Manifest) -> Path:
        return self.folder / str(manifest.version) / manifest.artifact

    def _check_integrity(self, manifest: Manifest, artifact: Path, actual_sha256: str) -> None:
        if actual_sha256 != manifest.sha256:
            raise IntegrityError(
                f"{artifact}: sha256 {actual_sha256[:16]}... does not match the manifest's "
                f"{manifest.sha256[:16]}...: the artifact changed after it was registered and "
                f"{manifest.label} will not be unpickled; register the model again"
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
        """Verify a version without unpickling it: manifest, checksum, scikit-learn version."""
        manifest = self.manifest(ref)
        artifact = self._artifact_path(manifest)
        try:
            actual = file_sha256(artifact)
        except FileNotFoundError:
            raise IntegrityError(
                f"{artifact} is missing; {manifest.label} cannot be loaded"
            ) from None
        self._check_integrity(manifest, artifact, actual)
        return manifest

    def load(self, ref: int | str) -> LoadedModel:
        """Verify, then unpickle. The bytes checked are the bytes unpickled (read once)."""
        manifest = self.manifest(ref)
        artifact = self._artifact_path(manifest)
        try:
            blob = artifact.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(
                f"{artifact} is missing; {manifest.label} cannot be loaded"
            ) from None
        self._check_integrity(manifest, artifact, hashlib.sha256(blob).hexdigest())
        try:
            model = joblib.load(io.BytesIO(blob))
        except Exception as exc:
            raise IntegrityError(
                f"{artifact}: checksum ok but it could not be unpickled "
                f"({type(exc).__name__}: {exc}); check the installed libraries against "
                f"{manifest.libraries}"
            ) from exc
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
    ) -> Manifest:
        """Write a new version and point ``aliases`` at it.

        The artifact is written into ``.tmp-<uuid>/`` without the lock; numbering the version,
        writing the manifest, renaming the folder into place and moving the aliases happen
        under it, so concurrent registrations get distinct versions.
        """
        check_schema(task, features, classes)
        for alias in aliases:
            check_alias(alias)
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
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            digest = self._write_artifact(model, staging / ARTIFACT_FILE)
            with self._lock():
                manifest = self._publish(staging, draft, digest, aliases)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
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
        )
        try:
            jsonio.dumps(draft.to_dict())
        except TypeError as exc:
            raise ModelStoreError(
                f"the manifest of {self.name} cannot be written as JSON ({exc}); pass plain "
                f"str/int/float/bool/list/dict values in config and classes"
            ) from exc
        return draft

    def _write_artifact(self, model: Any, artifact: Path) -> str:
        """Pickle ``model`` to ``artifact`` (fsynced); its sha256."""
        try:
            joblib.dump(model, artifact)
        except Exception as exc:
            raise ModelStoreError(
                f"{self.name}: the model could not be pickled with joblib "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        fsync_path(artifact)
        return file_sha256(artifact)

    def _publish(
        self, staging: Path, draft: Manifest, digest: str, aliases: Sequence[str]
    ) -> Manifest:
        """Under the lock: number the version, write its manifest, rename ``staging`` into
        place and point ``aliases`` at it."""
        version = self._next_version()
        manifest = dataclasses.replace(draft, version=version, created_at=utc_now(), sha256=digest)
        manifest_file = staging / MANIFEST_FILE
        manifest_file.write_bytes(jsonio.dumps_pretty(manifest.to_dict()))
        fsync_path(manifest_file)
        fsync_path(staging)
        staging.rename(self.folder / str(version))
        fsync_path(self.folder)
        for alias in dict.fromkeys(aliases):
            self.book.move(alias, version, action="register", at=manifest.created_at)
        return manifest

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(
            self._lock_file, timeout_ms=self.lock_timeout_ms, what=f"model {self.name!r}"
        )

    def _next_version(self) -> int:
        """One above every version that exists or ever had an alias (numbers are not reused)."""
        used = set(self._version_numbers()) | self.book.versions_named()
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
            event = self.book.move(alias, target, action="rollback", at=utc_now(), reason=reason)
        log.info(
            "%s: alias %r rolled back v%s -> v%d", self.name, alias, event.from_version, target
        )
        return event


def _listing(items: Sequence[Any]) -> str:
    return ", ".join(str(i) for i in items) if items else "none"
