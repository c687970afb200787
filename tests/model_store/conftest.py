"""Fixtures for the model store tests: an empty store on each backend.

Every test taking ``store`` runs twice: on a temporary folder and on S3 (SeaweedFS, or the
server ``STREAMSCORE_TEST_S3_ENDPOINT`` names). ``@pytest.mark.backends("folder")`` limits a
test to the backends it is about (a lock file, ``.tmp-`` folders). ``objects`` reaches the
store's objects from outside it, to tamper with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from model_store import ModelStore
from model_store.s3_storage import S3Options
from tests.model_store.factories import MODEL_NAME
from tests.object_storage import Objects

BACKENDS = ("folder", "s3")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("backend", marker.args if marker else BACKENDS)


@pytest.fixture
def store_root(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Path | str:
    if backend == "folder":
        return tmp_path / "models"
    return str(request.getfixturevalue("s3_root"))


@pytest.fixture
def store_options(request: pytest.FixtureRequest, backend: str) -> dict[str, Any]:
    """Keyword arguments that reach this backend (the S3 endpoint)."""
    if backend == "folder":
        return {}
    server = request.getfixturevalue("s3_server")
    return {"s3": S3Options(endpoint_url=server.endpoint, region="us-east-1")}


@pytest.fixture
def store(store_root: Path | str, store_options: dict[str, Any]) -> ModelStore:
    return ModelStore(store_root, MODEL_NAME, lock_timeout_ms=5000, **store_options)


@pytest.fixture
def reopen(store: ModelStore, store_options: dict[str, Any]) -> Any:
    """``reopen(**kwargs)``: another ModelStore on the same objects (another process would)."""

    def make(**kwargs: Any) -> ModelStore:
        return ModelStore(store.root, store.name, **(store_options | kwargs))

    return make


@pytest.fixture
def objects(request: pytest.FixtureRequest, store: ModelStore, backend: str) -> Objects:
    server = request.getfixturevalue("s3_server") if backend == "s3" else None
    return Objects(store, server)
