"""Worker processes run without pandas/pyarrow unless [worker] import_pandas = true.

Each scenario runs in a fresh interpreter, because this test process has pandas loaded.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.worker.conftest import NeedsPandas
from worker.lean import hint

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
        from worker.reloader import ModelReloader
        from worker.validation import ValidationPolicy
        store = ModelStore({str(model_store.root)!r}, "demo")
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
