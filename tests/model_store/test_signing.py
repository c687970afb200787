"""Signed manifests: with [model_store] signing_key, write access without the key cannot
introduce or alter a version."""

from __future__ import annotations

import hashlib
import logging

import pytest

from model_store import ModelStore
from model_store.signing import canonical, sign
from streamscore import jsonio
from streamscore.config import Secret, config_from_dict
from streamscore.exceptions import IntegrityError
from tests.model_store.factories import MODEL_NAME, flip_byte, register

KEY = Secret("correct horse battery staple")

# These tests reach into the version folders (planted pickles, edited files); the same
# refusals on object storage are covered by tests/model_store/test_cache.py.
pytestmark = pytest.mark.backends("folder")


@pytest.fixture
def signed_store(tmp_path) -> ModelStore:
    return ModelStore(tmp_path / "models", MODEL_NAME, signing_key=KEY)


def manifest_data(store: ModelStore, version: int) -> dict:
    return jsonio.loads((store.folder / str(version) / "manifest.json").read_bytes())


def write_manifest(store: ModelStore, version: int, data: dict) -> None:
    (store.folder / str(version) / "manifest.json").write_bytes(jsonio.dumps_pretty(data))


def test_registration_signs_the_manifest_and_the_version_loads(signed_store):
    register(signed_store)
    data = manifest_data(signed_store, 1)
    assert data["signature"].startswith("hmac-sha256:") and len(data["signature"]) == 12 + 64
    assert data["signature"] == sign(data, KEY)
    assert signed_store.load(1).manifest.version == 1
    assert signed_store.verify()[0].ok
    assert signed_store.promote(1).to_version == 1


def test_the_signature_covers_every_field_but_itself():
    a = {"name": "m", "version": 1, "metrics": {"accuracy": 0.9}}
    assert canonical(a) == canonical({**a, "signature": "x"})
    assert canonical(a) != canonical({**a, "metrics": {"accuracy": 0.91}})
    assert canonical(a) != canonical({**a, "unknown_field": 1})


@pytest.mark.parametrize(
    "change",
    [
        {"metrics": {"accuracy": 0.999}},
        {"features": []},
        {"sha256": "0" * 64},
        {"files": {"examples.jsonl": "0" * 64}},
        {"added_by_hand": True},
    ],
    ids=["metrics", "features", "sha256", "files", "new-field"],
)
def test_a_manifest_edited_after_signing_is_refused_everywhere(signed_store, change):
    register(signed_store)
    write_manifest(signed_store, 1, {**manifest_data(signed_store, 1), **change})
    with pytest.raises(IntegrityError, match=r"signature does not verify"):
        signed_store.load(1)
    with pytest.raises(IntegrityError, match=r"signature does not verify"):
        signed_store.promote(1)
    [result] = signed_store.verify()
    assert not result.ok and "signature does not verify" in result.problem
    assert "production" not in signed_store.aliases()


def test_a_planted_artifact_with_a_matching_sha256_fails_the_signature(signed_store):
    register(signed_store)
    artifact = signed_store.folder / "1" / "model.skops"
    flip_byte(artifact)
    data = manifest_data(signed_store, 1)
    data["sha256"] = hashlib.sha256(artifact.read_bytes()).hexdigest()
    write_manifest(signed_store, 1, data)
    with pytest.raises(IntegrityError, match=r"signature does not verify"):
        signed_store.load(1)


def test_an_unsigned_version_is_refused_when_a_key_is_configured(tmp_path):
    unsigned = ModelStore(tmp_path / "models", MODEL_NAME)
    register(unsigned)
    signed = ModelStore(tmp_path / "models", MODEL_NAME, signing_key=KEY)
    with pytest.raises(IntegrityError, match=r"is not signed, and \[model_store\] signing_key"):
        signed.load(1)
    with pytest.raises(IntegrityError, match=r"not signed"):
        signed.promote(1)
    assert not signed.verify()[0].ok


def test_removing_the_signature_does_not_bypass_it(signed_store):
    register(signed_store)
    data = manifest_data(signed_store, 1)
    del data["signature"]
    write_manifest(signed_store, 1, data)
    with pytest.raises(IntegrityError, match=r"not signed"):
        signed_store.load(1)


def test_a_version_signed_with_another_key_is_refused(tmp_path):
    register(ModelStore(tmp_path / "models", MODEL_NAME, signing_key=Secret("other key")))
    with pytest.raises(IntegrityError, match=r"signed with another key"):
        ModelStore(tmp_path / "models", MODEL_NAME, signing_key=KEY).load(1)


def test_signed_versions_still_load_in_a_store_without_a_key(tmp_path, signed_store):
    register(signed_store)
    assert ModelStore(tmp_path / "models", MODEL_NAME).load(1).manifest.version == 1


def test_the_key_comes_from_the_environment_and_never_shows(tmp_path, caplog):
    cfg = config_from_dict(
        {"model_store": {"root": "models", "model_name": MODEL_NAME}},
        environ={"STREAMSCORE__MODEL_STORE__SIGNING_KEY": KEY.reveal()},
        base_dir=tmp_path,
    )
    assert cfg.model_store.signing_key == KEY
    store = ModelStore.from_config(cfg)
    with caplog.at_level(logging.DEBUG):
        manifest = register(store)
        store.load(1)
    secret = KEY.reveal()
    assert secret not in repr(cfg) and secret not in repr(store)
    assert secret not in jsonio.dumps(cfg.to_dict()).decode()
    assert secret not in (store.folder / "1" / "manifest.json").read_text()
    assert secret not in jsonio.dumps(manifest.to_dict()).decode()
    assert secret not in caplog.text
    assert manifest_data(store, 1)["signature"] == sign(manifest_data(store, 1), KEY)
