"""The manifest written beside every artifact: what the model is and how it was made."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from streamscore.exceptions import IntegrityError

FEATURE_DTYPES = ("float", "int", "bool", "category")
MANIFEST_FILE = "manifest.json"
ARTIFACT_FILE = "model.joblib"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FeatureSpec:
    """One input feature, in the order the model expects it."""

    name: str
    dtype: str  # float | int | bool | category
    required: bool = True
    default: float | str | None = None  # used when an optional feature is absent
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(
            name=str(data["name"]),
            dtype=str(data["dtype"]),
            required=bool(data.get("required", True)),
            default=data.get("default"),
            categories=tuple(data.get("categories") or ()),
        )


@dataclass(frozen=True)
class DataFingerprint:
    """Which training data made the model."""

    path: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class Manifest:
    name: str
    version: int
    created_at: str
    task: str
    estimator: str
    libraries: dict[str, str]
    artifact: str
    sha256: str
    features: tuple[FeatureSpec, ...]
    classes: tuple[Any, ...] | None
    metrics: dict[str, float]
    data: DataFingerprint | None = None
    config: dict[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    parent: int | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "task": self.task,
            "estimator": self.estimator,
            "libraries": dict(self.libraries),
            "artifact": self.artifact,
            "sha256": self.sha256,
            "features": [f.to_dict() for f in self.features],
            "classes": list(self.classes) if self.classes is not None else None,
            "metrics": dict(self.metrics),
            "data": asdict(self.data) if self.data else None,
            "config": self.config,
            "git_commit": self.git_commit,
            "parent": self.parent,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "manifest") -> Manifest:
        try:
            fingerprint = data.get("data")
            return cls(
                name=str(data["name"]),
                version=int(data["version"]),
                created_at=str(data["created_at"]),
                task=str(data["task"]),
                estimator=str(data["estimator"]),
                libraries={str(k): str(v) for k, v in data["libraries"].items()},
                artifact=str(data["artifact"]),
                sha256=str(data["sha256"]),
                features=tuple(FeatureSpec.from_dict(f) for f in data["features"]),
                classes=tuple(data["classes"]) if data.get("classes") is not None else None,
                metrics={str(k): float(v) for k, v in data["metrics"].items()},
                data=DataFingerprint(**fingerprint) if fingerprint else None,
                config=dict(data.get("config") or {}),
                git_commit=data.get("git_commit"),
                parent=data.get("parent"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(
                f"{where}: malformed manifest ({type(exc).__name__}: {exc}); "
                f"the version cannot be trusted, register a new one"
            ) from exc
