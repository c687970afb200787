"""Worker processes run without pandas/pyarrow unless [worker] import_pandas = true.

Each scenario runs in a fresh interpreter, because this test process has pandas loaded.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.worker.conftest import TEST_TYPES, NeedsPandas
from worker.lean import THREAD_VARIABLES, hint, limit_model_threads

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_store_models_load_and_score_without_pandas(register, model_store):
    register()
    out = run_python(
        f"""
        import sys
        from worker.lean import skip_pandas
        assert skip_pandas() == ["pandas", "pyarrow"]
        from model_store import ModelStore
        from worker.processor import ServingModel
        from worker.validation import ValidationPolicy
        store = ModelStore({str(model_store.root)!r}, "demo")
        model = ServingModel(store.load("production"), ValidationPolicy(), alias="production",
                             seq=1)
        model.smoke_test()
        print(model.scorer.score(model.builder.row_from_defaults()).predictions)
        print(sorted(m for m in ("pandas", "pyarrow", "sklearn") if sys.modules.get(m)))
        """
    )
    predictions, loaded = out.strip().splitlines()
    assert predictions in ("[0]", "[1]")
    assert loaded == "['sklearn']"


def test_a_model_that_needs_pandas_is_refused_with_the_key_to_set(register, model_store):
    register(wrap=NeedsPandas)
    out = run_python(
        f"""
        from worker.lean import skip_pandas
        skip_pandas()
        from model_store import ModelStore
        from model_store.artifact import ArtifactPolicy
        from worker.reloader import ModelReloader
        from worker.validation import ValidationPolicy
        policy = ArtifactPolicy(tuple({TEST_TYPES!r}))
        store = ModelStore({str(model_store.root)!r}, "demo", policy=policy)
        event = ModelReloader(store, "production", ValidationPolicy()).check()
        print(event.outcome)
        print(event.reason)
        """
    )
    outcome, reason = out.strip().split("\n", 1)
    assert outcome == "refused"
    assert "No module named 'pandas' (skipped in worker processes)" in reason
    assert "set [worker] import_pandas = true" in reason


def test_hint_leaves_other_errors_alone():
    assert hint("ValueError: bad input") == "ValueError: bad input"


# --------------------------------------------------------------------------- model threads


def test_model_threads_sets_the_native_thread_pool_variables():
    env: dict[str, str] = {"OMP_NUM_THREADS": "8"}
    assert limit_model_threads(1, env) == {name: "1" for name in THREAD_VARIABLES}
    assert env == {name: "1" for name in THREAD_VARIABLES}


def test_model_threads_zero_leaves_the_environment_alone():
    env = {"OMP_NUM_THREADS": "8"}
    assert limit_model_threads(0, env) == {}
    assert env == {"OMP_NUM_THREADS": "8"}


def test_model_threads_bound_openmp_and_blas_in_a_fresh_worker_process():
    out = run_python(
        """
        import os
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.pop(name, None)
        from worker.lean import limit_model_threads
        limit_model_threads(1)
        import numpy as np
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
        from threadpoolctl import threadpool_info
        X = np.random.default_rng(0).normal(size=(200, 4))
        HistGradientBoostingClassifier(max_iter=5).fit(X, X[:, 0] > 0).predict(X)
        print(_openmp_effective_n_threads())
        print(sorted({(p["user_api"], p["num_threads"]) for p in threadpool_info()}))
        """
    )
    effective, pools = out.strip().splitlines()
    assert effective == "1"
    assert "('openmp', 1)" in pools and "('blas', 1)" in pools


def test_model_threads_refuses_to_run_after_numpy_is_loaded():
    out = run_python(
        """
        import numpy
        from worker.lean import limit_model_threads
        try:
            limit_model_threads(1)
        except RuntimeError as exc:
            print(exc)
        """
    )
    assert "after numpy was imported" in out
