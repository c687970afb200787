"""The reference profile of a model version: what its training data and predictions looked like.

Drift is measured against it (:mod:`monitor.drift`). Per feature, from the training rows:

* **numeric**: 10 bin edges at the 1/11 ... 10/11 quantiles, so the 11 bins each hold about a
  eleventh of the training rows; the first and last bins are open (``(-inf, e0)`` and
  ``[e9, +inf)``) and catch values beyond anything seen in training. Counts per bin, a count of
  missing values (NaN or absent), mean, standard deviation and missing rate. Edges that repeat
  (a feature with few distinct values) are merged, so a profile may hold fewer than 10.
* **categorical**: the 20 most frequent values with their counts, the count of every other value
  (``other``) and of missing values.

And the distribution of the model's predictions on the held-out rows: predicted classes
(categorical) for classifiers, predicted values (numeric bins) for regressors.

The profile is plain JSON (:meth:`Profile.to_dict`), tagged with :data:`PROFILE_FORMAT` and
:data:`PROFILE_FORMAT_VERSION`; :meth:`Profile.from_dict` refuses another format or version.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from streamscore import jsonio
from streamscore.exceptions import StreamscoreError

log = logging.getLogger(__name__)

PROFILE_FILE = "profile.json"  # its name among the files stored with a version
PROFILE_FORMAT = "streamscore.profile"
PROFILE_FORMAT_VERSION = 1
NUMERIC_EDGES = 10
TOP_CATEGORIES = 20
OTHER = "other"
MISSING = "missing"


class ProfileError(StreamscoreError):
    """A profile could not be built or read; the message says which feature and why."""


class FeatureLike(Protocol):
    """A schema entry: ``model_store.manifest.FeatureSpec`` fits (dtype ``category`` or not)."""

    @property
    def name(self) -> str: ...

    @property
    def dtype(self) -> str: ...


@dataclass(frozen=True)
class NumericProfile:
    """Quantile bins of one numeric column. ``counts`` has ``len(edges) + 1`` entries."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    missing: int
    mean: float | None
    std: float | None

    kind = "numeric"

    @property
    def rows(self) -> int:
        return sum(self.counts) + self.missing

    @property
    def missing_rate(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    def reference(self) -> np.ndarray:
        """Counts in bucket order as :func:`monitor.drift.bucket_numeric` counts them: the
        value bins, then missing."""
        return np.array([*self.counts, self.missing], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "edges": list(self.edges),
            "counts": list(self.counts),
            "missing": self.missing,
            "missing_rate": self.missing_rate,
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        edges = tuple(float(e) for e in data["edges"])
        counts = tuple(int(c) for c in data["counts"])
        if len(counts) != len(edges) + 1:
            raise ProfileError(
                f"numeric profile has {len(edges)} edges but {len(counts)} counts "
                f"(expected {len(edges) + 1})"
            )
        return cls(
            edges=edges,
            counts=counts,
            missing=int(data.get("missing", 0)),
            mean=None if data.get("mean") is None else float(data["mean"]),
            std=None if data.get("std") is None else float(data["std"]),
        )


@dataclass(frozen=True)
class CategoricalProfile:
    """The most frequent values of one column (as strings), then ``other``, then missing."""

    values: tuple[str, ...]
    counts: tuple[int, ...]
    other: int
    missing: int

    kind = "categorical"

    @property
    def rows(self) -> int:
        return sum(self.counts) + self.other + self.missing

    @property
    def missing_rate(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    def reference(self) -> np.ndarray:
        """Counts in bucket order: the values, ``other``, missing."""
        return np.array([*self.counts, self.other, self.missing], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "values": list(self.values),
            "counts": list(self.counts),
            "other": self.other,
            "missing": self.missing,
            "missing_rate": self.missing_rate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        values = tuple(str(v) for v in data["values"])
        counts = tuple(int(c) for c in data["counts"])
        if len(values) != len(counts):
            raise ProfileError(
                f"categorical profile has {len(values)} values but {len(counts)} counts"
            )
        return cls(
            values=values,
            counts=counts,
            other=int(data.get("other", 0)),
            missing=int(data.get("missing", 0)),
        )


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class Profile:
    """Per-feature profiles (in schema order) and the profile of the predictions."""

    rows: int
    features: dict[str, ColumnProfile]
    predictions: ColumnProfile | None
    prediction_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "format_version": PROFILE_FORMAT_VERSION,
            "rows": self.rows,
            "features": {name: p.to_dict() for name, p in self.features.items()},
            "predictions": None if self.predictions is None else self.predictions.to_dict(),
            "prediction_rows": self.prediction_rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        if not isinstance(data, Mapping) or data.get("format") != PROFILE_FORMAT:
            raise ProfileError(
                f"not a streamscore profile (format {_get(data, 'format')!r}, expected "
                f"{PROFILE_FORMAT!r})"
            )
        version = data.get("format_version")
        if version != PROFILE_FORMAT_VERSION:
            raise ProfileError(
                f"profile format_version {version!r} is not supported (this streamscore reads "
                f"{PROFILE_FORMAT_VERSION}); rebuild the profile by re-registering the version"
            )
        try:
            features = {str(k): _column_from_dict(v) for k, v in data["features"].items()}
            predictions = data.get("predictions")
            return cls(
                rows=int(data["rows"]),
                features=features,
                predictions=None if predictions is None else _column_from_dict(predictions),
                prediction_rows=int(data.get("prediction_rows", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"profile is malformed: {type(exc).__name__}: {exc}") from exc


def profile_of_matrix(
    matrix: Any,
    schema: Sequence[FeatureLike],
    *,
    predictions: Iterable[Any] | None = None,
    task: str = "classification",
) -> Profile:
    """:func:`build_profile` of a feature matrix whose columns follow ``schema`` (what training
    holds after cleansing: the training rows, and the model's predictions on the held-out rows)."""
    array = np.asarray(matrix)
    if array.ndim != 2 or array.shape[1] != len(schema):
        raise ProfileError(
            f"feature matrix of shape {array.shape} does not match the schema's "
            f"{len(schema)} features"
        )
    columns = {spec.name: array[:, j] for j, spec in enumerate(schema)}
    return build_profile(columns, schema, predictions=predictions, task=task)


def profile_bytes(profile: Profile) -> bytes:
    """The profile as the file stored with a version (sorted, indented JSON)."""
    return jsonio.dumps_pretty(profile.to_dict())


def profile_from_bytes(data: bytes) -> Profile:
    try:
        return Profile.from_dict(jsonio.loads(data))
    except jsonio.JSONDecodeError as exc:
        raise ProfileError(f"profile is not JSON: {exc}") from exc


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, Mapping) else None


def _column_from_dict(data: Mapping[str, Any]) -> ColumnProfile:
    kind = data.get("kind")
    if kind == NumericProfile.kind:
        return NumericProfile.from_dict(data)
    if kind == CategoricalProfile.kind:
        return CategoricalProfile.from_dict(data)
    raise ProfileError(f"column profile kind {kind!r} is neither 'numeric' nor 'categorical'")


# --------------------------------------------------------------------------- building


def numeric_values(column: Any) -> np.ndarray:
    """A column as float64, None and non-numbers as NaN (one vectorised conversion)."""
    array = np.asarray(column)
    if array.dtype.kind in "fiub":
        return array.astype(np.float64, copy=False)
    out = np.full(array.shape, np.nan)
    for i, value in enumerate(array.tolist()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[i] = value
        elif isinstance(value, bool):
            out[i] = float(value)
    return out


def profile_numeric(column: Any) -> NumericProfile:
    """Quantile edges, bin counts, missing count, mean and std of one column."""
    values = numeric_values(column)
    present = values[np.isfinite(values)]
    missing = int(values.size - present.size)
    if present.size == 0:
        return NumericProfile(edges=(), counts=(0,), missing=missing, mean=None, std=None)
    quantiles = np.arange(1, NUMERIC_EDGES + 1) / (NUMERIC_EDGES + 1)
    edges = np.unique(np.quantile(present, quantiles, method="inverted_cdf"))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    return NumericProfile(
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        missing=missing,
        mean=float(present.mean()),
        std=float(present.std()),
    )


def category_strings(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(values as str, missing mask)``; None and NaN are missing."""
    array = np.asarray(column, dtype=object)
    missing = np.array(
        [v is None or (isinstance(v, float) and v != v) for v in array.tolist()], dtype=bool
    )
    text = np.array([_category_text(v) for v in array.tolist()], dtype=object)
    return text, missing


def _category_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1.0 from a CSV column and 1 from an event are one category
    return str(value)


def profile_categorical(column: Any) -> CategoricalProfile:
    """The 20 most frequent values (ties by value), every other value, missing values."""
    text, missing = category_strings(column)
    present = text[~missing]
    if present.size:
        values, counts = np.unique(present.astype(str), return_counts=True)
        order = sorted(range(values.size), key=lambda i: (-int(counts[i]), str(values[i])))
    else:
        values, counts, order = np.array([], dtype=str), np.array([], dtype=np.int64), []
    top = order[:TOP_CATEGORIES]
    return CategoricalProfile(
        values=tuple(str(values[i]) for i in top),
        counts=tuple(int(counts[i]) for i in top),
        other=int(sum(int(counts[i]) for i in order[TOP_CATEGORIES:])),
        missing=int(missing.sum()),
    )


def build_profile(
    data: Mapping[str, Any] | Any,
    schema: Sequence[FeatureLike],
    *,
    predictions: Iterable[Any] | None = None,
    task: str = "classification",
) -> Profile:
    """The reference profile of ``data`` (a DataFrame or ``name → column``) for ``schema``.

    Features of dtype ``category`` are profiled as categorical, every other dtype as numeric.
    ``predictions`` (the model's outputs on the held-out rows) are profiled as categorical for a
    classification ``task`` and as numeric for regression.
    """
    features: dict[str, ColumnProfile] = {}
    rows = 0
    for spec in schema:
        try:
            column = data[spec.name]
        except (KeyError, IndexError) as exc:
            raise ProfileError(
                f"feature {spec.name!r} of the schema is not a column of the training data; "
                f"profile the same frame the model was fitted on"
            ) from exc
        profile = (
            profile_categorical(column) if spec.dtype == "category" else profile_numeric(column)
        )
        features[spec.name] = profile
        rows = max(rows, profile.rows)
    predicted: ColumnProfile | None = None
    prediction_rows = 0
    if predictions is not None:
        array = np.asarray(list(predictions) if not hasattr(predictions, "shape") else predictions)
        prediction_rows = int(array.size)
        predicted = (
            profile_categorical(array) if task == "classification" else profile_numeric(array)
        )
    return Profile(
        rows=rows, features=features, predictions=predicted, prediction_rows=prediction_rows
    )


def stored_profile(store: Any, version: int) -> Profile | None:
    """The reference profile stored with ``version`` (``profile.json``), None without one.

    A version registered without a profile has none, silently. One whose ``profile.json`` is
    listed in its manifest but fails its checksum or cannot be read is logged as a warning:
    drift is off for that version. Extra files stored with a version come with the
    safe-artifacts change to the model store (``ModelStore.read_file``, checksummed in the
    manifest); a store without it has no profiles.
    """
    from streamscore.exceptions import ModelStoreError

    read_file = getattr(store, "read_file", None)
    if read_file is None:
        return None
    try:
        manifest = store.manifest(version)
        if PROFILE_FILE not in manifest.files:
            return None
        return profile_from_bytes(read_file(manifest, PROFILE_FILE))
    except (ModelStoreError, ProfileError) as exc:
        log.warning(
            "v%d: its reference profile (%s) cannot be used, so drift is not counted for this "
            "version: %s. Re-register the version (`streamscore train`, or `streamscore models "
            "import --data`) to give it a profile; `streamscore models verify` lists what "
            "else changed",
            version,
            PROFILE_FILE,
            exc,
        )
        return None
