"""Examples run through the worker's own validation and scoring path, and at every load."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import Ridge

from model_store import FeatureSpec
from model_store.examples import EXAMPLES_FILE, parse_examples
from streamscore import jsonio
from tests.example_cases import CLASSIFIER_KINDS, classifier_case, range_case, row_event
from worker.examples import run_examples, run_on_model
from worker.processor import ServingModel
from worker.reloader import ModelReloader
from worker.validation import ValidationPolicy


def as_file(*lines) -> bytes:
    return b"".join(jsonio.dumps(line) + b"\n" for line in lines)


def serving(model_store, version: int) -> ServingModel:
    return ServingModel(model_store.load(version), ValidationPolicy(), alias="p", seq=0)


@pytest.mark.parametrize("kind", CLASSIFIER_KINDS)
@pytest.mark.parametrize("passing", [True, False], ids=["passing", "failing"])
def test_each_classifier_expectation_kind_on_a_stored_model(register, model_store, kind, passing):
    register()
    case = classifier_case(kind, passing=passing)
    report = run_examples(serving(model_store, 1), parse_examples(as_file(case)))
    [result] = report.results
    assert result.passed is passing and report.passed is passing
    if not passing:
        assert "expected" in report.summary() and "got" in report.summary()
        assert f"example '{case['name']}' (line 1): FAILED" in report.summary()


def fitted_regressor():
    data = load_breast_cancer()
    return Ridge().fit(data.data[:, 1:], data.data[:, 0]), data.data[236, 0]


@pytest.mark.parametrize("passing", [True, False], ids=["passing", "failing"])
def test_the_range_expectation_on_a_regressor(passing):
    model, radius = fitted_regressor()
    names = [n.replace(" ", "_") for n in load_breast_cancer().feature_names][1:]
    low, high = (radius - 2, radius + 2) if passing else (radius + 10, radius + 20)
    examples = parse_examples(as_file(range_case(row_event(236, drop_first=True), low, high, "r")))
    report = run_on_model(
        model,
        examples,
        task="regression",
        features=[FeatureSpec(n, "float") for n in names],
        classes=None,
        policy=ValidationPolicy(),
    )
    assert report.passed is passing
    assert report.results[0].actual.startswith("prediction 23.")


def test_a_dead_letter_expectation_follows_the_workers_validation_policy(register, model_store):
    register()
    case = classifier_case("dead_letter", passing=True)  # one feature: missing the others
    examples = parse_examples(as_file(case))
    imputing = ServingModel(
        model_store.load(1), ValidationPolicy(missing_feature="impute"), alias="p", seq=0
    )
    assert run_examples(serving(model_store, 1), examples).passed
    assert not run_examples(imputing, examples).passed  # imputed, so it is scored


def register_with_examples(model_store, demo_set, *lines, C: float = 0.5):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    model.fit(demo_set.X, demo_set.y)
    return model_store.register(
        model,
        task="classification",
        features=[FeatureSpec(n, "float") for n in demo_set.names],
        classes=[0, 1],
        metrics={},
        estimator="lr",
        files={EXAMPLES_FILE: as_file(*lines)},
    )


def test_the_reloader_refuses_a_version_failing_an_example_and_keeps_the_old_one(
    register, model_store, demo_set
):
    register()
    reloader = ModelReloader(model_store, "production", ValidationPolicy())
    assert reloader.check().outcome == "loaded"
    bad = register_with_examples(
        model_store,
        demo_set,
        classifier_case("class", passing=True),
        classifier_case("probability", passing=False),
    )
    model_store.promote(bad.version)
    event = reloader.check()
    assert event.outcome == "refused"
    assert "ExamplesFailed: 1 of 2 examples failed" in event.reason
    assert "'probability failing' (line 2): FAILED: expected P(1) <= 0.1, got prediction 1" in (
        event.reason
    )
    assert reloader.latest.version == 1
    good = register_with_examples(
        model_store, demo_set, *(classifier_case(k, passing=True) for k in CLASSIFIER_KINDS)
    )
    model_store.promote(good.version)
    assert reloader.check().outcome == "loaded" and reloader.latest.version == good.version


def test_the_reloader_refuses_a_version_whose_examples_file_changed(
    register, model_store, demo_set
):
    register()
    reloader = ModelReloader(model_store, "production", ValidationPolicy())
    reloader.check()
    second = register_with_examples(model_store, demo_set, classifier_case("class", passing=True))
    model_store.promote(second.version)
    (model_store.folder / str(second.version) / EXAMPLES_FILE).write_bytes(
        as_file(classifier_case("class", passing=True), {"event": {}, "expect": {"class": 7}})
    )
    event = reloader.check()
    assert event.outcome == "refused" and "does not match the manifest" in event.reason
    assert reloader.latest.version == 1


def test_the_reloader_refuses_a_version_whose_signed_manifest_was_edited(tmp_path, demo_set):
    from model_store import ModelStore
    from streamscore.config import Secret

    store = ModelStore(tmp_path / "models", "demo", signing_key=Secret("k"))
    first = register_with_examples(store, demo_set, classifier_case("class", passing=True))
    store.promote(first.version)
    reloader = ModelReloader(store, "production", ValidationPolicy())
    assert reloader.check().outcome == "loaded"
    second = register_with_examples(store, demo_set, classifier_case("class", passing=True))
    store.promote(second.version)
    manifest = store.folder / str(second.version) / "manifest.json"
    data = jsonio.loads(manifest.read_bytes())
    data["metrics"] = {"accuracy": 1.0}
    manifest.write_bytes(jsonio.dumps_pretty(data))
    event = reloader.check()
    assert event.outcome == "refused" and "signature does not verify" in event.reason
    assert reloader.latest.version == first.version
