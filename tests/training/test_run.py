"""The whole flow on real files into a real temporary model store."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from sklearn.datasets import load_diabetes

from model_store import ModelStore, file_sha256
from streamscore import jsonio
from streamscore.exceptions import GateFailed, TrainingError
from training import GateRefused, export_demo_data, train
from training.lock import hold_training_lock, training_lock_path
from training.run import STEPS, Unchanged

STRICT_GATE = {"min": {"accuracy": 1.01}, "compare_metric": "roc_auc", "tolerance": 0.01}


def held_out_events(cfg):
    return [jsonio.loads(line) for line in cfg.demo.events_path.read_bytes().splitlines()]


def test_train_registers_promotes_and_records_lineage(cfg):
    result = train(cfg, progress=False)
    assert result.promoted and result.verdict.passed
    store = ModelStore.from_config(cfg)
    assert store.aliases() == {"candidate": 1, "production": 1}
    manifest = store.manifest("production")
    assert manifest == result.manifest
    assert manifest.version == 1 and manifest.task == "classification" and manifest.parent is None
    assert manifest.classes == (0, 1) and all(type(c) is int for c in manifest.classes)
    assert len(manifest.features) == 30 and manifest.feature_names[0] == "mean_radius"
    assert all(f.dtype == "float" and f.required for f in manifest.features)
    train_csv = pd.read_csv(cfg.training.data_path)
    assert manifest.features[0].default == pytest.approx(train_csv["mean_radius"].median())
    assert manifest.data is not None
    assert manifest.data.path == str(cfg.training.data_path)
    assert manifest.data.sha256 == file_sha256(cfg.training.data_path)
    assert manifest.data.rows == 455
    assert manifest.config == jsonio.loads(jsonio.dumps(cfg.to_dict()))
    assert manifest.git_commit is None or len(manifest.git_commit) == 40
    assert manifest.estimator == "sklearn.linear_model.LogisticRegression(max_iter=2000)"
    assert manifest.metrics == result.metrics and manifest.metrics["roc_auc"] > 0.95
    assert (result.train_rows, result.test_rows) == (364, 91)
    assert result.cleanse_report.rows_out == 455 and result.production is None


def test_trained_artifact_predicts_held_out_events_on_a_float_array_without_warnings(cfg):
    train(cfg, progress=False)
    loaded = ModelStore.from_config(cfg).load("production")
    events = held_out_events(cfg)
    X = np.array([[e[n] for n in loaded.manifest.feature_names] for e in events], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predicted = loaded.model.predict(X)
        probabilities = loaded.model.predict_proba(X)
    assert probabilities.shape == (len(events), 2)
    accuracy = float(np.mean(predicted == np.array([e["label"] for e in events])))
    assert accuracy > 0.93


def test_second_run_is_compared_with_production_on_the_same_rows(cfg):
    train(cfg, progress=False)
    second = train(cfg, force=True, progress=False)
    assert second.promoted and second.manifest.parent == 1
    assert second.production is not None and second.production.version == 1
    assert second.production.metrics == second.metrics  # same data, seed and estimator
    compare = second.verdict.checks[-1]
    assert compare.name == "vs production v1 roc_auc" and compare.passed
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 2, "production": 2}


def test_stricter_gate_keeps_production_and_the_candidate(cfg, make_config):
    train(cfg, progress=False)
    strict = make_config("strict.toml", training={"gate": STRICT_GATE})
    with pytest.raises(GateRefused) as err:
        train(strict, progress=False)
    refused = err.value
    assert isinstance(refused, GateFailed)
    assert str(refused).startswith("breast-cancer v2 stays a candidate (production stays v1): ")
    assert refused.reasons == [refused.result.verdict.reasons[0]]
    assert refused.reasons[0].startswith("accuracy ") and refused.reasons[0].endswith(" < 1.01")
    assert refused.result.manifest.version == 2 and not refused.result.promoted
    assert refused.result.manifest.parent == 1
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 2, "production": 1}


def test_no_promote_registers_a_candidate_and_reports_the_gate(cfg, make_config):
    result = train(cfg, promote=False, progress=False)
    assert not result.promoted and result.verdict.passed
    strict = make_config("strict.toml", training={"gate": STRICT_GATE})
    failing = train(strict, promote=False, progress=False)  # reported, not raised
    assert not failing.verdict.passed and not failing.promoted
    assert ModelStore.from_config(cfg).aliases() == {"candidate": 2}


def test_production_with_another_feature_schema_fails_the_comparison(cfg, make_config):
    narrow = make_config("narrow.toml", training={"drop_columns": ["mean_radius"]})
    train(narrow, progress=False)
    with pytest.raises(GateRefused) as err:
        train(cfg, progress=False)
    assert err.value.reasons == [
        "cannot compare with production v1: its feature schema differs from the candidate's "
        "(29 vs 30 features: candidate adds 'mean_radius')"
    ]


def test_comparison_off_does_not_load_production(cfg, make_config):
    train(cfg, progress=False)
    (ModelStore.from_config(cfg).folder / "1" / "model.skops").write_bytes(b"tampered")
    off = make_config("off.toml", training={"gate": {"compare_metric": ""}})
    result = train(off, progress=False)
    assert result.promoted and result.production is None and result.manifest.parent == 1


def write_csv(cfg, frame):
    cfg.training.data_path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(cfg.training.data_path, index=False)


@pytest.mark.parametrize(
    ("sections", "frame", "message"),
    [
        (
            {"training": {"label_column": "diagnosis"}},
            None,
            r"label column 'diagnosis' is not in the data",
        ),
        (
            {"training": {"estimator": "sklearn.linear_model.NoSuchModel"}},
            None,
            r"has no 'NoSuchModel'",
        ),
        (
            {},
            pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "target": [1, 1, 1, 1, 1]}),
            r"single class \(1 in all 5 rows\)",
        ),
        (
            {},
            pd.DataFrame({"city": ["Oslo", "Rome"] * 5, "target": [0, 1] * 5}),
            r"column 'city' .* categorical_columns .* drop_columns",
        ),
        (
            {},
            pd.DataFrame({"x": [1.0, 2.0], "target": [None, None]}),
            r"no rows left after cleansing",
        ),
        (
            {"training": {"estimator_params": {"C": -1.0}}},
            None,
            r"fitting sklearn.linear_model.LogisticRegression\(C=-1.0\) on 364 rows failed",
        ),
    ],
    ids=["no-label", "bad-estimator", "single-class", "text-column", "no-rows", "fit-error"],
)
def test_data_and_config_problems_are_training_errors_and_register_nothing(
    make_config, sections, frame, message
):
    cfg = make_config(**sections)
    if frame is None:
        export_demo_data(make_config("demo.toml"))  # the demo set as exported by default
    else:
        write_csv(cfg, frame)
    with pytest.raises(TrainingError, match=message):
        train(cfg, progress=False)
    assert ModelStore.from_config(cfg).versions() == []


def test_imputer_none_with_missing_values_names_the_columns(make_config):
    cfg = make_config(training={"imputer": "none"})
    x = [1.0, None, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    write_csv(cfg, pd.DataFrame({"x": x, "target": [0, 1] * 5}))
    with pytest.raises(TrainingError, match=r"imputer = 'none' but feature 'x' have missing"):
        train(cfg, progress=False)


def test_data_option_overrides_the_configured_path(cfg, make_config, tmp_path):
    elsewhere = tmp_path / "elsewhere.csv"
    cfg.training.data_path.rename(elsewhere)
    result = train(cfg, progress=False, data_path=elsewhere)
    assert result.manifest.data is not None and result.manifest.data.path == str(elsewhere)
    assert result.manifest.config["training"]["data_path"] == str(elsewhere)


def test_training_a_regressor_from_parquet(make_config, tmp_path):
    path = tmp_path / "diabetes.parquet"
    load_diabetes(as_frame=True).frame.to_parquet(path)
    gate = {"min": {"r2": 0.3}, "compare_metric": "rmse", "tolerance": 1.0}
    cfg = make_config(
        model_store={"model_name": "diabetes"},
        training={
            "data_path": str(path),
            "task": "regression",
            "estimator": "sklearn.linear_model.Ridge",
            "estimator_params": {"alpha": 1.0},
            "gate": gate,
        },
    )
    first = train(cfg, progress=False)
    assert first.promoted and list(first.metrics) == ["rmse", "mae", "r2"]
    assert first.manifest.classes is None
    second = train(cfg, force=True, progress=False)
    assert second.promoted and second.verdict.checks[-1].name == "vs production v1 rmse"


def test_categorical_features_and_text_labels_end_to_end(make_config):
    cfg = make_config(
        training={"categorical_columns": ["city"], "gate": {"min": {"accuracy": 0.8}}}
    )
    rng = np.random.default_rng(0)
    n = 200
    city = rng.choice(["Oslo", "Rome", "Lima"], size=n)
    x = rng.normal(size=n)
    label = np.where((city == "Rome") | (x > 1.0), "high", "low")
    write_csv(cfg, pd.DataFrame({"id": range(n), "city": city, "x": x, "target": label}))
    result = train(cfg, progress=False)
    manifest = result.manifest
    assert manifest.classes == ("high", "low")
    assert [(f.name, f.dtype) for f in manifest.features] == [("city", "category"), ("x", "float")]
    assert manifest.features[0].categories == ("Lima", "Oslo", "Rome")
    model = ModelStore.from_config(cfg).load("production").model
    rows = np.array([["Rome", 0.0], ["Oslo", 0.0], ["Paris", 3.0]], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.predict(rows)[:2].tolist() == ["high", "low"]


def test_a_concurrent_run_is_refused_and_registers_nothing(cfg):
    path = training_lock_path(cfg)
    with hold_training_lock(cfg), pytest.raises(TrainingError, match=f"holds {path} \\(pid"):
        train(cfg, progress=False)
    assert ModelStore.from_config(cfg).versions() == []


def test_train_reports_every_step_in_order(cfg):
    seen: list[str] = []
    train(cfg, progress=False, on_step=seen.append)
    assert (
        seen
        == list(STEPS)
        == [
            "load",
            "cleanse",
            "split",
            "fit",
            "evaluate",
            "gate",
            "register",
            "promote",
        ]
    )


def test_progress_display_shows_every_step_with_its_outcome(cfg):
    out = io.StringIO()
    train(cfg, progress=True, console=Console(file=out, width=140, color_system=None))
    text = out.getvalue()
    for step in STEPS:
        assert step in text
    assert "455 rows kept" in text and "production -> v1" in text


def test_progress_display_marks_the_failed_step(make_config):
    cfg = make_config(training={"label_column": "diagnosis"})
    export_demo_data(make_config("demo.toml"))
    out = io.StringIO()
    with pytest.raises(TrainingError):
        train(cfg, progress=True, console=Console(file=out, width=140, color_system=None))
    failed = next(line for line in out.getvalue().splitlines() if "cleanse" in line)
    assert "✗" in failed and "label column 'diagnosis'" in failed


def test_retrain_on_unchanged_data_settings_and_code_registers_nothing(cfg):
    first = train(cfg, progress=False)
    with pytest.raises(Unchanged) as err:
        train(cfg, progress=False)
    assert str(err.value).startswith("unchanged since v1: same data (sha256 ")
    assert err.value.manifest.version == first.manifest.version == 1
    assert [m.version for m in ModelStore.from_config(cfg).versions()] == [1]


def test_retrain_names_the_newest_identical_version_and_force_registers_one(cfg, make_config):
    train(cfg, progress=False)
    other = make_config("hgb.toml", training={"estimator_params": {"max_iter": 500}})
    train(other, progress=False)  # another setting: a new version
    with pytest.raises(Unchanged, match=r"^unchanged since v1: "):
        train(cfg, progress=False)  # back to v1's settings: v1 again
    forced = train(cfg, force=True, progress=False)
    assert forced.manifest.version == 3
    with pytest.raises(Unchanged, match=r"^unchanged since v3: "):
        train(cfg, progress=False)


def test_retrain_on_changed_data_trains(cfg, make_config):
    train(cfg, progress=False)
    data = cfg.training.data_path
    data.write_text(data.read_text().rstrip("\n").rsplit("\n", 1)[0] + "\n")  # one row fewer
    assert train(cfg, progress=False).manifest.version == 2


def test_every_trained_version_stores_its_reference_profile(cfg, make_config):
    from monitor.profile import PROFILE_FILE, stored_profile

    result = train(cfg, progress=False)
    store = ModelStore.from_config(cfg)
    assert PROFILE_FILE in result.manifest.files  # checksummed with the version
    profile = stored_profile(store, result.manifest.version)
    assert profile is not None
    assert sorted(profile.features) == sorted(result.manifest.feature_names)
    assert profile.rows == result.train_rows  # the rows the model learnt from
    radius = profile.features["mean_radius"].to_dict()
    train_csv = pd.read_csv(cfg.training.data_path)
    assert radius["kind"] == "numeric" and len(radius["edges"]) == 10
    assert radius["mean"] == pytest.approx(train_csv["mean_radius"].mean(), rel=0.05)
    assert profile.prediction_rows == result.test_rows  # the held-out predictions
    assert profile.predictions is not None and profile.predictions.kind == "categorical"


def test_a_categorical_feature_is_profiled_by_its_most_frequent_values(make_config):
    from monitor.profile import stored_profile

    cfg = make_config(
        training={"categorical_columns": ["city"], "gate": {"min": {"accuracy": 0.5}}}
    )
    rng = np.random.default_rng(1)
    n = 200
    city = rng.choice(["Oslo", "Rome", "Lima"], size=n, p=[0.6, 0.3, 0.1])
    x = rng.normal(size=n)
    label = np.where((city == "Rome") | (x > 1.0), "high", "low")
    write_csv(cfg, pd.DataFrame({"id": range(n), "city": city, "x": x, "target": label}))
    result = train(cfg, progress=False)
    profile = stored_profile(ModelStore.from_config(cfg), result.manifest.version)
    assert profile is not None
    city_profile = profile.features["city"].to_dict()
    assert city_profile["kind"] == "categorical" and city_profile["values"][0] == "Oslo"
    assert profile.features["x"].to_dict()["kind"] == "numeric"
