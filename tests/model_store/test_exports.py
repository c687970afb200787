"""The public surface of ``model_store``: what other packages import."""

from __future__ import annotations

import model_store


def test_public_names_are_exported_once_and_sorted():
    assert model_store.__all__ == sorted(set(model_store.__all__))
    assert model_store.__all__ == [
        "AliasEvent",
        "DataFingerprint",
        "FeatureSpec",
        "ImportRecord",
        "LoadedModel",
        "Manifest",
        "ModelStore",
        "StoreUnavailable",
        "VerifyResult",
        "current_git_commit",
        "file_sha256",
    ]
    for name in model_store.__all__:
        assert getattr(model_store, name).__module__.startswith("model_store.")
