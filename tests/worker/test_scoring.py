"""Scorer: one model call per batch; bisection isolates the rows that make it fail."""

from __future__ import annotations

import numpy as np

from tests.worker.conftest import FailsOnMarker
from worker.scoring import Scorer


def test_score_classifier_gives_labels_and_probabilities(register, model_store, demo_set):
    register()
    scorer = Scorer(model_store.load("production"))
    scores = scorer.score(demo_set.X[:50])
    assert scores.rows == list(range(50))
    assert scores.failed == []
    assert scores.probabilities is not None and scores.probabilities.shape == (50, 2)
    expected = model_store.load("production").model.predict(demo_set.X[:50]).tolist()
    assert scores.predictions == expected
    assert all(type(p) is int for p in scores.predictions)


def test_score_bisects_to_the_failing_rows_only(register, model_store, demo_set):
    X = demo_set.X[:64].copy()
    X[[5, 40], 0] = -1.0
    register(wrap=lambda m: FailsOnMarker(m, -1.0))
    scorer = Scorer(model_store.load("production"))
    scores = scorer.score(X)
    assert [row for row, _, _ in scores.failed] == [5, 40]
    assert scores.failed[0][1] == "ValueError"
    assert "first feature -1.0" in scores.failed[0][2]
    assert scores.rows == [i for i in range(64) if i not in (5, 40)]
    assert scores.probabilities is not None
    assert len(scores.predictions) == scores.probabilities.shape[0] == 62


def test_score_empty_matrix():
    class Nothing:
        pass

    from model_store import LoadedModel

    class M:
        task = "regression"
        classes = None

    scorer = Scorer(LoadedModel(manifest=M(), model=Nothing()))  # type: ignore[arg-type]
    assert scorer.score(np.empty((0, 3))).rows == []
