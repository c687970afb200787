"""A team's own transformer: a type outside scikit-learn, numpy and scipy."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class ClipOutliers(TransformerMixin, BaseEstimator):
    """Clip every column to the [low, high] quantiles seen in fit."""

    def __init__(self, low: float = 0.01, high: float = 0.99) -> None:
        self.low = low
        self.high = high

    def fit(self, X: np.ndarray, y: Any = None) -> ClipOutliers:
        self.lower_ = np.quantile(X, self.low, axis=0)
        self.upper_ = np.quantile(X, self.high, axis=0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.clip(X, self.lower_, self.upper_)
