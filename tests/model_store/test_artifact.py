"""Safe artifacts: skops with trusted types by default, pickles only by explicit choice."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from model_store import ModelStore
from model_store.artifact import ArtifactPolicy, load_user_file
from streamscore import jsonio
from streamscore.exceptions import IntegrityError, ModelStoreError
from tests.model_store.custom_types import ClipOutliers
from tests.model_store.factories import MODEL_NAME, classifier, dataset, features, register
from tests.model_store.hostile import code_running_pickle, plant, write_legacy_version

CUSTOM = "tests.model_store.custom_types.ClipOutliers"

# These tests reach into the version folders (planted pickles, edited files); the same
# refusals on object storage are covered by tests/model_store/test_cache.py.
pytestmark = pytest.mark.backends("folder")


def custom_pipeline():
    X, y, _ = dataset()
    return make_pipeline(ClipOutliers(), StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        X, y
    )


def register_model(store: ModelStore, model) -> object:
    return store.register(
        model,
        task="classification",
        features=features(),
        classes=[0, 1],
        metrics={"accuracy": 0.97},
        estimator="custom",
    )


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "payload-ran"


# --------------------------------------------------------------------------- the format


def test_new_versions_are_skops_files_that_need_no_untrusted_type(store):
    manifest = register(store)
    artifact = store.folder / "1" / "model.skops"
    assert manifest.artifact == "model.skops" and not (store.folder / "1" / "model.joblib").exists()
    needed = skops.io.get_untrusted_types(file=artifact)
    assert ArtifactPolicy().untrusted(needed) == []
    assert manifest.libraries["skops"] == skops.__version__
    assert (
        store.load(1).model.predict(dataset()[0][:3]).tolist()
        == classifier().predict(dataset()[0][:3]).tolist()
    )


# --------------------------------------------------------------------------- the attack


def test_the_planted_pickle_really_runs_its_command_when_unpickled(tmp_path, marker):
    """The payload used below is live: plain joblib.load executes it."""
    path = tmp_path / "evil.joblib"
    path.write_bytes(code_running_pickle(marker, classifier()))
    model = joblib.load(path)
    assert marker.read_text() == "payload ran"
    assert hasattr(model, "predict_proba")


@pytest.mark.parametrize("artifact", ["model.joblib", "model.skops"])
def test_a_code_running_pickle_with_a_matching_checksum_is_refused_and_never_run(
    store, marker, artifact
):
    register(store)
    plant(store.folder, 1, code_running_pickle(marker, classifier()), artifact)
    with pytest.raises(IntegrityError) as refused:
        store.load(1)
    [result] = store.verify()
    with pytest.raises(IntegrityError):
        store.promote(1)
    assert not result.ok
    assert "production" not in store.aliases()
    assert not marker.exists()
    expected = "allow_pickle" if artifact == "model.joblib" else "not a readable skops file"
    assert expected in str(refused.value) and expected in result.problem


def test_the_cli_refuses_the_planted_pickle_in_verify_and_promote(tmp_path, marker):
    config = tmp_path / "config.toml"
    config.write_text(
        f'[model_store]\nroot = "models"\nmodel_name = "{MODEL_NAME}"\n'
        '[kafka]\nbootstrap_servers = "127.0.0.1:1"\n'
    )
    store = ModelStore(tmp_path / "models", MODEL_NAME)
    register(store)
    plant(store.folder, 1, code_running_pickle(marker, classifier()))
    cli = [sys.executable, "-m", "streamscore", "--config", str(config), "models"]
    verify = subprocess.run([*cli, "verify"], capture_output=True, text=True, timeout=120)
    promote = subprocess.run([*cli, "promote", "1"], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 2 and "FAILED" in verify.stdout
    assert "allow_pickle" in verify.stdout.replace("\n", " ")
    assert promote.returncode == 2 and "allow_pickle" in promote.stderr + promote.stdout
    assert "production" not in store.aliases()
    assert not marker.exists()


# --------------------------------------------------------------------------- pickles by choice


def test_a_store_written_before_skops_loads_with_allow_pickle_and_is_refused_without(store):
    manifest = register(store).to_dict()
    write_legacy_version(store.folder, 2, classifier(), manifest)
    with pytest.raises(IntegrityError, match=r"joblib pickle.*\[model_store\] allow_pickle = true"):
        store.load(2)
    assert not store.verify()[1].ok
    legacy = ModelStore(store.root, store.name, policy=ArtifactPolicy(allow_pickle=True))
    assert legacy.load(2).model.predict(dataset()[0][:1]).tolist() == [0]
    assert [r.ok for r in legacy.verify()] == [True, True]
    assert legacy.promote(2).to_version == 2


def test_registering_into_a_pickle_store_still_writes_skops(store):
    legacy = ModelStore(store.root, store.name, policy=ArtifactPolicy(allow_pickle=True))
    assert register(legacy).artifact == "model.skops"


def test_load_user_file_unpickles_the_importers_own_file_and_the_store_keeps_skops(store, tmp_path):
    path = tmp_path / "mine.pkl"
    joblib.dump(classifier(), path)
    model = load_user_file(path)
    manifest = register_model(store, model)
    assert manifest.artifact == "model.skops"
    assert store.load(1).model.predict(dataset()[0][:2]).tolist() == [0, 0]
    skops_file = tmp_path / "mine.skops"
    skops.io.dump(classifier(), skops_file)
    assert hasattr(load_user_file(skops_file), "predict")
    with pytest.raises(ModelStoreError, match=r"unknown model file type '\.txt'"):
        load_user_file(tmp_path / "model.txt")


# --------------------------------------------------------------------------- trusted types


def test_a_custom_transformer_is_refused_at_registration_naming_the_type_and_the_key(store):
    with pytest.raises(ModelStoreError) as refused:
        register_model(store, custom_pipeline())
    message = str(refused.value)
    assert CUSTOM in message and "[model_store] trusted_types" in message
    assert store.versions() == [] and list(store.folder.glob(".tmp-*")) == []


@pytest.mark.parametrize("trusted", [CUSTOM, "tests.model_store.*"])
def test_a_custom_transformer_is_accepted_once_trusted(tmp_path, trusted):
    store = ModelStore(tmp_path / "models", MODEL_NAME, policy=ArtifactPolicy((trusted,)))
    register_model(store, custom_pipeline())
    loaded = store.load(1).model
    assert isinstance(loaded.steps[0][1], ClipOutliers)
    assert store.verify()[0].ok


def test_a_store_that_does_not_trust_a_registered_custom_type_refuses_to_load_it(tmp_path):
    trusting = ModelStore(tmp_path / "models", MODEL_NAME, policy=ArtifactPolicy((CUSTOM,)))
    register_model(trusting, custom_pipeline())
    strict = ModelStore(tmp_path / "models", MODEL_NAME)
    with pytest.raises(IntegrityError, match=rf"outside the trusted list: {CUSTOM}"):
        strict.load(1)
    assert "trusted_types" in strict.verify()[0].problem


def test_a_trusted_type_prefix_does_not_trust_a_sibling_module(tmp_path):
    policy = ArtifactPolicy(("tests.model_store.custom.*",))
    assert not policy.trusts(CUSTOM)
    assert ArtifactPolicy(("tests.model_store.custom_types.*",)).trusts(CUSTOM)


def test_trusted_types_and_allow_pickle_come_from_the_config(tmp_path):
    from streamscore.config import config_from_dict

    cfg = config_from_dict(
        {"model_store": {"root": "m", "trusted_types": [CUSTOM], "allow_pickle": True}},
        environ={},
        base_dir=tmp_path,
    )
    store = ModelStore.from_config(cfg)
    assert store.policy == ArtifactPolicy((CUSTOM,), allow_pickle=True)


# --------------------------------------------------------------------------- loading in a worker


def test_a_refused_artifact_is_never_built_in_a_fresh_interpreter(store, marker):
    """No import of the tests' own modules can hide the payload: a clean process refuses."""
    register(store)
    plant(store.folder, 1, code_running_pickle(marker, classifier()))
    code = f"""
        from model_store import ModelStore
        from streamscore.exceptions import IntegrityError
        try:
            ModelStore({str(store.root)!r}, {store.name!r}).load(1)
        except IntegrityError as exc:
            print("refused:", exc)
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused:") and "allow_pickle" in done.stdout
    assert not marker.exists()
    assert jsonio.loads((store.folder / "1" / "manifest.json").read_bytes())["artifact"] == (
        "model.joblib"
    )
