"""The versioned model store: artifacts with manifests, aliases, verified loading.

``ModelStore`` is the entry point. Loading verifies the artifact's sha256 against its manifest
before unpickling. This package never imports ``training``.
"""

from model_store.aliases import AliasEvent
from model_store.checksum import file_sha256
from model_store.manifest import DataFingerprint, FeatureSpec, ImportRecord, Manifest
from model_store.storage import StoreUnavailable
from model_store.store import LoadedModel, ModelStore, VerifyResult, current_git_commit

__all__ = [
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
