"""The versioned model store: ``<root>/<name>/<version>/{model.joblib, manifest.json}``."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import platform
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib

from model_store.aliases import AliasBook, AliasEvent, check_alias
from model_store.atomic import fsync_dir
from model_store.checksum import file_sha256
from model_store.locking import exclusive_lock
from model_store.manifest import (
    ARTIFACT_FILE,
    MANIFEST_FILE,
    DataFingerprint,
    FeatureSpec,
    Manifest,
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

TASKS = ("classification", "regression")


@dataclass(frozen=True)
class LoadedModel:
    manifest: Manifest
    model: Any


@dataclass(frozen=True)
class VerifyResult:
    version: int
    ok: bool
    problem: str = ""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("scikit-learn", "joblib", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            out[dist] = "unknown"
    return out


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def current_git_commit(path: Path | None = None) -> str | None:
    """The commit of the code at ``path``, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path,
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
        if not name or "/" in name or name.startswith("."):
            raise ModelStoreError(f"invalid model name {name!r}: use a plain folder name")
        self.root = Path(root)
        self.name = name
        self.folder = self.root / name
        self.lock_timeout_ms = lock_timeout_ms
        self.allow_version_mismatch = allow_version_mismatch
        self.book = AliasBook(self.folder / "aliases")
        self._lock_file = self.folder / ".lock"

    @classmethod
    def from_config(cls, cfg: Config) -> ModelStore:
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
        if not self.folder.is_dir():
            return []
        return sorted(int(p.name) for p in self.folder.iterdir() if p.is_dir() and p.name.isdigit())

    def versions(self) -> list[Manifest]:
        out = []
        for version in self._version_numbers():
            try:
                out.append(self._read_manifest(version))
            except ModelStoreError as exc:
                log.warning("skipping %s v%d: %s", self.name, version, exc)
        return out

    def aliases(self) -> dict[str, int]:
        return self.book.all()

    def alias_state(self, alias: str) -> tuple[int, int] | None:
        return self.book.state(alias)

    def history(self, alias: str | None = None) -> list[AliasEvent]:
        return self.book.history(alias)

    def resolve(self, ref: int | str) -> int:
        """A version number from ``3``, ``"3"`` or an alias name."""
        known = self._version_numbers()
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            version = int(ref)
            if version in known:
                return version
            raise VersionNotFound(
                f"{self.name} has no version {version} (versions: {_listing(known)}) in {self.root}"
            )
        state = self.book.state(ref)
        if state is None:
            raise VersionNotFound(
                f"{self.name} has no alias {ref!r} (aliases: {_listing(sorted(self.aliases()))}); "
                f"set it with `streamscore models promote VERSION --alias {ref}`"
            )
        return state[0]

    def manifest(self, ref: int | str) -> Manifest:
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
            raise IntegrityError(f"{path}: not valid JSON ({exc})") from exc
        return Manifest.from_dict(data, where=str(path))

    # ------------------------------------------------------------------ verified loading

    def check(self, ref: int | str) -> Manifest:
        """Verify a version without unpickling it: manifest, checksum, library versions."""
        manifest = self.manifest(ref)
        artifact = self.folder / str(manifest.version) / manifest.artifact
        if not artifact.is_file():
            raise IntegrityError(f"{artifact} is missing; {manifest.label} cannot be loaded")
        actual = file_sha256(artifact)
        if actual != manifest.sha256:
            raise IntegrityError(
                f"{artifact}: sha256 {actual[:16]}... does not match the manifest's "
                f"{manifest.sha256[:16]}...; the artifact was changed after registration and "
                f"will not be unpickled"
            )
        trained = manifest.libraries.get("scikit-learn", "unknown")
        running = library_versions()["scikit-learn"]
        if _major_minor(trained) != _major_minor(running) and not self.allow_version_mismatch:
            raise IntegrityError(
                f"{manifest.label} was trained with scikit-learn {trained}, this process runs "
                f"{running}; retrain it, or set [model_store] allow_version_mismatch = true "
                f"to load it anyway"
            )
        return manifest

    def load(self, ref: int | str) -> LoadedModel:
        """Verify (checksum before unpickling) and load a version."""
        manifest = self.check(ref)
        artifact = self.folder / str(manifest.version) / manifest.artifact
        try:
            model = joblib.load(artifact)
        except Exception as exc:
            raise IntegrityError(
                f"{artifact}: could not be unpickled ({type(exc).__name__}: {exc})"
            ) from exc
        return LoadedModel(manifest, model)

    def verify(self) -> list[VerifyResult]:
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
        """Write a new version (temporary folder, then rename) and point ``aliases`` at it."""
        if task not in TASKS:
            raise ModelStoreError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        for alias in aliases:
            check_alias(alias)
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            artifact = staging / ARTIFACT_FILE
            joblib.dump(model, artifact)
            digest = file_sha256(artifact)
            with exclusive_lock(self._lock_file, timeout_ms=self.lock_timeout_ms):
                known = self._version_numbers()
                version = (known[-1] if known else 0) + 1
                manifest = Manifest(
                    name=self.name,
                    version=version,
                    created_at=_now(),
                    task=task,
                    estimator=estimator,
                    libraries=library_versions(),
                    artifact=ARTIFACT_FILE,
                    sha256=digest,
                    features=tuple(features),
                    classes=tuple(classes) if classes is not None else None,
                    metrics={k: float(v) for k, v in metrics.items()},
                    data=data,
                    config=dict(config or {}),
                    git_commit=git_commit,
                    parent=parent,
                )
                (staging / MANIFEST_FILE).write_bytes(jsonio.dumps_pretty(manifest.to_dict()))
                fsync_dir(staging)
                staging.rename(self.folder / str(version))
                fsync_dir(self.folder)
                for alias in aliases:
                    self.book.move(alias, version, action="register", at=_now())
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        log.info("registered %s", manifest.label)
        return manifest

    def promote(self, ref: int | str, alias: str = "production", *, reason: str = "") -> AliasEvent:
        check_alias(alias)
        with exclusive_lock(self._lock_file, timeout_ms=self.lock_timeout_ms):
            version = self.resolve(ref)
            self.check(version)
            return self.book.move(alias, version, action="promote", at=_now(), reason=reason)

    def rollback(self, alias: str = "production", *, reason: str = "") -> AliasEvent:
        check_alias(alias)
        with exclusive_lock(self._lock_file, timeout_ms=self.lock_timeout_ms):
            stack = self.book.stack(alias)
            if len(stack) < 2:
                where = f"v{stack[-1]}" if stack else "nothing"
                raise NoHistoryError(
                    f"alias {alias!r} of {self.name} points at {where} and has no earlier "
                    f"version to roll back to; promote one with `streamscore models promote`"
                )
            target = stack[-2]
            return self.book.move(alias, target, action="rollback", at=_now(), reason=reason)


def _listing(items: Sequence[Any]) -> str:
    return ", ".join(str(i) for i in items) if items else "none"
