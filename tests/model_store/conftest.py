"""Fixtures for the model store tests: an empty store in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store import ModelStore
from tests.model_store.factories import MODEL_NAME


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models", MODEL_NAME, lock_timeout_ms=5000)
