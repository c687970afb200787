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
    │   └── ExamplesFailed       a version got one of its stored examples wrong
    ├── WorkerConflict           a restart cannot help (another process holds this member's
    │                            identity); the supervisor does not restart the worker
    └── DeliveryFailed           (worker.transport) outputs not acknowledged / commit refused

Foreign errors (kafka, orjson, joblib, pandas) are translated at the boundary with
``raise ... from exc`` so the cause stays visible in tracebacks.
"""

from __future__ import annotations


class StreamscoreError(Exception):
    """Root of every error streamscore raises on purpose."""


class WorkerConflict(StreamscoreError):
    """Another process holds what this worker needs to be (e.g. its static member name): a
    restart would fail the same way, so the worker exits with :data:`EXIT_CONFLICT` and its
    supervisor stops instead of restarting it."""


#: Exit code of a worker process that ended on a :class:`WorkerConflict`.
EXIT_CONFLICT = 4


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


class ExamplesFailed(ScoringError):
    """A version answered one of its examples wrongly (``[training] examples``); the message
    lists each failed example with what was expected and what the model answered."""
