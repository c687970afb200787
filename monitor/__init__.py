"""Model quality in production: reference profiles, drift, delayed labels, live metrics per
version, and the automatic rollback rule.

* :mod:`monitor.profile`: the reference profile of a version's training data and predictions.
* :mod:`monitor.drift`: bucket counts per batch, PSI / Jensen-Shannon over a sliding window.
* :mod:`monitor.joinstate`: predictions joined with delayed labels, on disk (sqlite, WAL).
* :mod:`monitor.quality`: accuracy, log loss, ROC AUC, Brier, MAE, RMSE, coverage per window.
* :mod:`monitor.rollback`: when a version is rolled back, and why (pure logic).
* :mod:`monitor.service`: ``streamscore monitor``, the service that runs them on Kafka.
"""

from monitor.drift import BucketCounter, BucketCounts, DriftReport, DriftWindow, js_distance, psi
from monitor.profile import Profile, ProfileError, build_profile

__all__ = [
    "BucketCounter",
    "BucketCounts",
    "DriftReport",
    "DriftWindow",
    "Profile",
    "ProfileError",
    "build_profile",
    "js_distance",
    "psi",
]
