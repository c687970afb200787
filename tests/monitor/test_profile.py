"""The reference profile: quantile bins, top categories, predictions, JSON round trip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from monitor.profile import (
    PROFILE_FORMAT_VERSION,
    CategoricalProfile,
    NumericProfile,
    Profile,
    ProfileError,
    build_profile,
    profile_categorical,
    profile_numeric,
)
from streamscore import jsonio


@dataclass(frozen=True)
class Spec:
    name: str
    dtype: str


def test_profile_numeric_has_ten_quantile_edges_and_open_outer_bins() -> None:
    values = np.arange(1, 1101, dtype=float)  # 1..1100: every 1/11 quantile is a clean cut
    profile = profile_numeric(values)
    assert len(profile.edges) == 10
    assert len(profile.counts) == 11
    assert sum(profile.counts) == 1100
    assert all(95 <= c <= 105 for c in profile.counts)  # about a eleventh in each bin
    assert profile.edges[0] > 1 and profile.edges[-1] < 1100  # outer bins hold real rows
    assert profile.mean == pytest.approx(550.5)
    assert profile.std == pytest.approx(np.std(values))
    assert profile.missing == 0 and profile.missing_rate == 0.0


def test_profile_numeric_counts_missing_values_apart() -> None:
    profile = profile_numeric([1.0, 2.0, None, float("nan"), 3.0])
    assert profile.missing == 2
    assert sum(profile.counts) == 3
    assert profile.missing_rate == pytest.approx(0.4)


def test_profile_numeric_merges_repeated_edges_of_a_few_valued_column() -> None:
    profile = profile_numeric([0, 0, 0, 1, 1, 1, 1, 0, 1, 0])
    assert profile.edges == (0.0, 1.0)
    assert profile.counts == (0, 5, 5)


def test_profile_categorical_keeps_twenty_most_frequent_and_other() -> None:
    column = [f"c{i:02d}" for i in range(25) for _ in range(100 - i)] + [None] * 7
    profile = profile_categorical(column)
    assert profile.values == tuple(f"c{i:02d}" for i in range(20))
    assert profile.counts == tuple(100 - i for i in range(20))
    assert profile.other == sum(100 - i for i in range(20, 25))
    assert profile.missing == 7


def test_build_profile_profiles_features_by_dtype_and_predicted_classes() -> None:
    rng = np.random.default_rng(0)
    data = {"amount": rng.normal(size=500), "country": rng.choice(["fr", "de", "it"], 500)}
    profile = build_profile(
        data,
        [Spec("amount", "float"), Spec("country", "category")],
        predictions=rng.integers(0, 2, 100),
        task="classification",
    )
    assert isinstance(profile.features["amount"], NumericProfile)
    assert isinstance(profile.features["country"], CategoricalProfile)
    assert isinstance(profile.predictions, CategoricalProfile)
    assert set(profile.predictions.values) == {"0", "1"}
    assert profile.rows == 500 and profile.prediction_rows == 100


def test_build_profile_of_a_regressor_bins_predicted_values() -> None:
    profile = build_profile(
        {"x": np.arange(50.0)},
        [Spec("x", "float")],
        predictions=np.arange(100.0),
        task="regression",
    )
    assert isinstance(profile.predictions, NumericProfile)


def test_build_profile_missing_column_names_the_feature() -> None:
    with pytest.raises(ProfileError, match="'amount'"):
        build_profile({"x": [1.0]}, [Spec("amount", "float")])


def test_profile_round_trips_through_json() -> None:
    rng = np.random.default_rng(1)
    profile = build_profile(
        {"a": rng.normal(size=200), "b": rng.choice(["x", "y"], 200)},
        [Spec("a", "float"), Spec("b", "category")],
        predictions=[0, 1, 1, 0],
    )
    data = jsonio.loads(jsonio.dumps(profile.to_dict()))
    assert data["format_version"] == PROFILE_FORMAT_VERSION
    assert Profile.from_dict(data) == profile


def test_profile_from_dict_refuses_another_format_version() -> None:
    data = build_profile({"a": [1.0, 2.0]}, [Spec("a", "float")]).to_dict()
    data["format_version"] = 99
    with pytest.raises(ProfileError, match="format_version 99"):
        Profile.from_dict(data)


def test_profile_of_a_training_matrix_follows_the_schema_and_round_trips_as_a_file() -> None:
    from monitor.profile import profile_bytes, profile_from_bytes, profile_of_matrix

    rng = np.random.default_rng(3)
    matrix = np.column_stack([rng.normal(size=300), rng.integers(0, 3, 300).astype(float)])
    schema = [Spec("amount", "float"), Spec("kind", "category")]
    profile = profile_of_matrix(matrix, schema, predictions=rng.integers(0, 2, 60))
    assert isinstance(profile.features["kind"], CategoricalProfile)
    assert set(profile.features["kind"].values) == {"0", "1", "2"}  # 1.0 in a matrix is "1"
    assert profile_from_bytes(profile_bytes(profile)) == profile
    with pytest.raises(ProfileError, match="does not match the schema's 2 features"):
        profile_of_matrix(matrix[:, :1], schema)


def test_a_stored_profile_failing_its_checksum_warns_that_drift_is_off(tmp_path, caplog) -> None:
    import logging

    from sklearn.dummy import DummyClassifier

    from model_store import ModelStore
    from model_store.manifest import FeatureSpec
    from monitor.profile import PROFILE_FILE, profile_bytes, profile_of_matrix, stored_profile

    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 1))
    y = (X[:, 0] > 0).astype(int)
    store = ModelStore(tmp_path, "m")
    common = {
        "task": "classification",
        "features": [FeatureSpec("amount", "float")],
        "classes": [0, 1],
        "metrics": {},
        "estimator": "DummyClassifier()",
    }
    profile = profile_of_matrix(X, [Spec("amount", "float")], predictions=y)
    with_profile = store.register(
        DummyClassifier().fit(X, y), files={PROFILE_FILE: profile_bytes(profile)}, **common
    )
    without = store.register(DummyClassifier().fit(X, y), **common)
    assert stored_profile(store, with_profile.version) == profile

    with caplog.at_level(logging.WARNING, logger="monitor.profile"):
        assert stored_profile(store, without.version) is None
        assert not warnings(caplog)  # no profile stored: nothing to warn about
        stored = store.folder / str(with_profile.version) / PROFILE_FILE
        stored.write_bytes(stored.read_bytes().replace(b'"amount"', b'"amounT"'))
        assert stored_profile(store, with_profile.version) is None
    [record] = warnings(caplog)
    assert (
        f"v{with_profile.version}: its reference profile (profile.json) cannot be used, so "
        "drift is not counted for this version" in record.getMessage()
    )
    assert "streamscore models verify" in record.getMessage()


def warnings(caplog: Any) -> list[Any]:
    """monitor.profile's own records (others are captured too once a test of the session has
    configured the root logger)."""
    return [r for r in caplog.records if r.name == "monitor.profile"]
