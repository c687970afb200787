"""Every error streamscore raises on purpose derives from :class:`StreamscoreError`.

The tree::

    StreamscoreError
    ├── ConfigError              a config file or environment override is wrong
    ├── BrokerError              the embedded broker cannot start / stop / be reached
    ├── ModelStoreError          the versioned model store refused an operation
    │   ├── VersionNotFound      no such version or alias
    │   ├── IntegrityError       checksum, manifest or library-version check failed
    │   └── NoHistoryError       rollback with nothing to roll back to
    ├── TrainingError            training data or the training run is unusable
    │   └── GateFailed           the quality gate refused promotion
    ├── ScoringError             a worker could not score (schema, model load)
    └── DeliveryFailed           (worker.transport) outputs not acknowledged / commit refused

Foreign errors (kafka, orjson, joblib, pandas) are translated at the boundary with
``raise ... from exc`` so the cause stays visible in tracebacks.
"""

from __future__ import annotations


class StreamscoreError(Exception):
    """Root of every error streamscore raises on purpose."""


class ConfigError(StreamscoreError):
    """A config file or environment override is wrong; the message names key and fix."""


class BrokerError(StreamscoreError):
    """The embedded broker could not be started, stopped or reached."""


class ModelStoreError(StreamscoreError):
    """The model store refused an operation."""


class VersionNotFound(ModelStoreError):
    """A version or alias that does not exist was asked for."""


class IntegrityError(ModelStoreError):
    """An artifact failed verification (checksum, manifest, library versions)."""


class NoHistoryError(ModelStoreError):
    """Rollback was asked for but the alias has no earlier target."""


class TrainingError(StreamscoreError):
    """Training data or a training run is unusable."""


class GateFailed(TrainingError):
    """The quality gate refused to promote a candidate."""

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons or [])


class ScoringError(StreamscoreError):
    """The worker cannot score with the model it has (schema, load)."""
