from tests.worker.conftest import demo_set, model_store, register  # noqa: F401 - shared fixtures
