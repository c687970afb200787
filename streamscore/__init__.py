"""streamscore: score Kafka events with a versioned scikit-learn model.

The shared core: configuration (:mod:`streamscore.config`), errors
(:mod:`streamscore.exceptions`), JSON (:mod:`streamscore.jsonio`), the embedded broker
(:mod:`streamscore.broker`) and topic administration (:mod:`streamscore.kafka_admin`).
The product packages are ``model_store``, ``training``, ``worker`` and ``producer``.
"""

from streamscore.config import Config, load_config
from streamscore.exceptions import StreamscoreError

__all__ = ["Config", "StreamscoreError", "load_config"]
__version__ = "0.1.0"
