"""The manifest written beside every artifact: what the model is and how it was made."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from streamscore.exceptions import IntegrityError, ModelStoreError

FEATURE_DTYPES = ("float", "int", "bool", "category", "string")
#: Feature dtypes whose values are strings (``string``: free text, no category check).
TEXT_DTYPES = frozenset({"category", "string"})
#: The pandas dtype of a DataFrame model's column when ``FeatureSpec.frame_dtype`` is empty.
DEFAULT_FRAME_DTYPES = {
    "float": "float64",
    "int": "int64",
    "bool": "bool",
    "category": "object",
    "string": "object",
}
TASKS = ("classification", "regression")
LIBRARIES = ("python", "scikit-learn", "skops", "joblib", "numpy")
MANIFEST_FILE = "manifest.json"
ARTIFACT_FILE = "model.skops"  # stores written before skops hold model.joblib
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FeatureSpec:
    """One input feature, in the order the model expects it."""

    name: str
    dtype: str  # float | int | bool | category | string (free text)
    required: bool = True
    default: float | str | None = None  # used when an optional feature is absent
    categories: tuple[str, ...] = ()  # for dtype "category": the values the model knows
    #: The pandas dtype of the column the model was fitted on ("float64", "object",
    #: "category", ...); '' when it was not fitted on a DataFrame.
    frame_dtype: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["categories"] = list(self.categories)
        if not self.frame_dtype:
            del out["frame_dtype"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            name=str(data["name"]),
            dtype=str(data["dtype"]),
            required=bool(data.get("required", True)),
            default=data.get("default"),
            categories=tuple(str(c) for c in data.get("categories") or ()),
            frame_dtype=str(data.get("frame_dtype") or ""),
        )


@dataclass(frozen=True)
class ImportRecord:
    """Where an imported model came from: the file (or MLflow folder) and its sha256."""

    path: str
    sha256: str
    format: str  # joblib | mlflow | python (registered from a notebook, no file)

    def to_dict(self) -> dict[str, Any]:
        return {"imported": True, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImportRecord:
        return cls(path=str(data["path"]), sha256=str(data["sha256"]), format=str(data["format"]))


@dataclass(frozen=True)
class DataFingerprint:
    """Which training data made the model."""

    path: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class Manifest:
    """Everything known about one version; ``manifest.json`` holds :meth:`to_dict`."""

    name: str
    version: int
    created_at: str  # ISO 8601, UTC
    task: str  # classification | regression
    estimator: str
    libraries: dict[str, str]  # python, scikit-learn, skops, joblib, numpy
    artifact: str  # file name inside the version folder; its suffix names the format
    sha256: str
    features: tuple[FeatureSpec, ...]
    classes: tuple[Any, ...] | None  # JSON-able labels; None for regression
    metrics: dict[str, float]  # on the held-out split
    data: DataFingerprint | None = None
    config: dict[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    parent: int | None = None
    #: Extra files stored with the version (examples, reference profiles): name -> sha256.
    files: dict[str, str] = field(default_factory=dict)
    #: Set for models fitted elsewhere and brought in by ``models import`` or the Python API.
    imported: ImportRecord | None = None
    #: The quality gate's verdict at registration (``GateVerdict.to_dict()``), when judged.
    gate: dict[str, Any] | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def label(self) -> str:
        """``name vN``, for messages."""
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
            # JSON has no NaN: an undefined metric is written as null and read back as NaN.
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            "data": asdict(self.data) if self.data else None,
            "config": self.config,
            "git_commit": self.git_commit,
            "parent": self.parent,
            "files": dict(self.files),
            "imported": self.imported.to_dict() if self.imported else None,
            "gate": self.gate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "manifest") -> Manifest:
        """Parse a manifest; anything malformed is an :class:`IntegrityError` naming ``where``."""
        try:
            fingerprint = data.get("data")
            classes = data.get("classes")
            git_commit = data.get("git_commit")
            parent = data.get("parent")
            imported = data.get("imported")
            gate = data.get("gate")
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
                classes=tuple(classes) if classes is not None else None,
                metrics={
                    str(k): float("nan") if v is None else float(v)
                    for k, v in data["metrics"].items()
                },
                data=(
                    DataFingerprint(
                        path=str(fingerprint["path"]),
                        sha256=str(fingerprint["sha256"]),
                        rows=int(fingerprint["rows"]),
                    )
                    if fingerprint
                    else None
                ),
                config=dict(data.get("config") or {}),
                git_commit=str(git_commit) if git_commit is not None else None,
                parent=int(parent) if parent is not None else None,
                files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
                imported=ImportRecord.from_dict(imported) if imported else None,
                gate=dict(gate) if gate is not None else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(
                f"{where}: malformed manifest ({type(exc).__name__}: {exc}); "
                f"this version cannot be trusted: register the model again"
            ) from exc


def check_schema(task: str, features: Sequence[FeatureSpec], classes: Sequence[Any] | None) -> None:
    """Refuse a registration whose task, feature schema or class labels cannot be served."""
    if task not in TASKS:
        raise ModelStoreError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if len(features) == 0:
        raise ModelStoreError("a model needs at least one feature in its schema; got none")
    seen: set[str] = set()
    for spec in features:
        if not spec.name:
            raise ModelStoreError("feature names must not be empty")
        if spec.name in seen:
            raise ModelStoreError(f"feature {spec.name!r} appears twice in the schema")
        seen.add(spec.name)
        if spec.dtype not in FEATURE_DTYPES:
            raise ModelStoreError(
                f"feature {spec.name!r} has dtype {spec.dtype!r}; "
                f"use one of {', '.join(FEATURE_DTYPES)}"
            )
    if task == "classification" and (classes is None or len(classes) == 0):
        raise ModelStoreError(
            "a classifier needs its class labels (e.g. classes=model.classes_); got none"
        )
    if task == "regression" and classes is not None:
        raise ModelStoreError("a regressor has no class labels: pass classes=None")


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (class labels are often ``np.int64``)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "shape", None) == () else value
