"""``config.toml`` parsed into frozen, typed settings.

One file holds every path, topic and knob. :func:`load_config` reads it with :mod:`tomllib`,
applies environment overrides (``STREAMSCORE__SECTION__KEY``, nested tables joined by ``__``),
checks every value against its declared type and range, and returns a frozen :class:`Config`.

Rules:

* Unknown sections or keys are errors that name the file, the section and the key.
* Relative paths resolve against the folder of the config file, never the current directory.
* Secrets are :class:`Secret` objects: they never appear in ``repr``, logs or ``to_dict``.

Where things are: the sections and their defaults in :mod:`~streamscore.config.schema`, the
environment in :mod:`~streamscore.config.env`, type and range checks in
:mod:`~streamscore.config.coerce`, reading a file in :mod:`~streamscore.config.loader`.
Import from here: ``from streamscore.config import Config, load_config``.
"""

from streamscore.config.env import (
    DEFAULT_CONFIG_FILE,
    ENV_CONFIG_FILE,
    ENV_PREFIX,
    resolve_config_path,
)
from streamscore.config.loader import config_from_dict, derive_names, load_config
from streamscore.config.schema import (
    DEFAULT_ESTIMATORS,
    DEFAULT_GATES,
    KNOWN_METRICS,
    LOWER_IS_BETTER,
    TASK_METRICS,
    BrokerConfig,
    Config,
    DemoConfig,
    GateConfig,
    HttpConfig,
    KafkaConfig,
    ModelStoreConfig,
    MonitorConfig,
    ScheduleConfig,
    Secret,
    TrainerConfig,
    TrainingConfig,
    WorkerConfig,
    gate_for,
    with_overrides,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_ESTIMATORS",
    "DEFAULT_GATES",
    "ENV_CONFIG_FILE",
    "ENV_PREFIX",
    "KNOWN_METRICS",
    "LOWER_IS_BETTER",
    "TASK_METRICS",
    "BrokerConfig",
    "Config",
    "DemoConfig",
    "GateConfig",
    "HttpConfig",
    "KafkaConfig",
    "ModelStoreConfig",
    "MonitorConfig",
    "ScheduleConfig",
    "Secret",
    "TrainerConfig",
    "TrainingConfig",
    "WorkerConfig",
    "config_from_dict",
    "derive_names",
    "gate_for",
    "load_config",
    "resolve_config_path",
    "with_overrides",
]
