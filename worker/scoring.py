"""One model call per batch; when it raises, bisect to find the rows that make it fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from model_store import LoadedModel


@dataclass(frozen=True)
class BatchScores:
    """Predictions for the rows that scored, and the rows that did not with the reason."""

    rows: list[int]  # matrix row indices that scored, ascending
    predictions: list[Any]  # JSON-ready labels / values, one per scored row
    probabilities: npt.NDArray[np.float64] | None  # (len(rows), n_classes) for classifiers
    failed: list[tuple[int, str, str]]  # (matrix row, error class, message)


class Scorer:
    """Scores matrices with one loaded model.

    Classifiers with ``predict_proba`` are called once: the prediction is the class with the
    highest probability (``classes_[argmax]``), which is what ``predict`` returns for the
    probabilistic classifiers scikit-learn ships, at half the cost of calling both.
    """

    def __init__(self, loaded: LoadedModel) -> None:
        self.model = loaded.model
        self.manifest = loaded.manifest
        self.is_classifier = loaded.manifest.task == "classification"
        self.use_proba = self.is_classifier and hasattr(self.model, "predict_proba")
        classes = loaded.manifest.classes
        if self.is_classifier and classes is None:
            classes = tuple(_plain(c) for c in getattr(self.model, "classes_", ()))
        self.classes: tuple[Any, ...] = tuple(classes or ())
        self.class_keys: tuple[str, ...] = tuple(str(c) for c in self.classes)

    def score(self, matrix: npt.NDArray[Any]) -> BatchScores:
        n = matrix.shape[0]
        if n == 0:
            return BatchScores([], [], None, [])
        try:
            predictions, proba = self._call(matrix)
            return BatchScores(list(range(n)), predictions, proba, [])
        except Exception:  # noqa: BLE001
            return self._bisect(matrix)

    def _call(self, matrix: npt.NDArray[Any]) -> tuple[list[Any], npt.NDArray[np.float64] | None]:
        if self.use_proba:
            proba = np.asarray(self.model.predict_proba(matrix), dtype=np.float64)
            if proba.shape != (matrix.shape[0], len(self.classes)):
                raise ValueError(
                    f"predict_proba returned shape {proba.shape}, expected "
                    f"({matrix.shape[0]}, {len(self.classes)})"
                )
            winners = proba.argmax(axis=1)
            classes = self.classes
            return [classes[i] for i in winners.tolist()], proba
        raw = self.model.predict(matrix)
        values = np.asarray(raw)
        if values.shape[:1] != (matrix.shape[0],):
            raise ValueError(f"predict returned shape {values.shape} for {matrix.shape[0]} rows")
        return [_plain(v) for v in values.tolist()], None

    def _bisect(self, matrix: npt.NDArray[Any]) -> BatchScores:
        rows: list[int] = []
        predictions: list[Any] = []
        probas: list[npt.NDArray[np.float64]] = []
        failed: list[tuple[int, str, str]] = []
        stack = [(0, matrix.shape[0])]
        while stack:
            start, stop = stack.pop()
            try:
                preds, proba = self._call(matrix[start:stop])
            except Exception as exc:  # noqa: BLE001
                if stop - start == 1:
                    failed.append((start, type(exc).__name__, str(exc) or repr(exc)))
                else:
                    middle = (start + stop) // 2
                    stack.append((middle, stop))
                    stack.append((start, middle))
                continue
            rows.extend(range(start, stop))
            predictions.extend(preds)
            if proba is not None:
                probas.append(proba)
        order = np.argsort(rows, kind="stable")
        rows_sorted = [rows[i] for i in order]
        preds_sorted = [predictions[i] for i in order]
        proba_all = np.concatenate(probas)[order] if probas else None
        failed.sort()
        return BatchScores(rows_sorted, preds_sorted, proba_all, failed)


def _plain(value: Any) -> Any:
    """numpy scalar → plain Python value (JSON-ready)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
