"""streamscore: score Kafka events with a versioned scikit-learn model.

The shared core, which imports no other package of ours: configuration
(:mod:`streamscore.config`), errors (:mod:`streamscore.exceptions`), JSON
(:mod:`streamscore.jsonio`), the wire contract (:mod:`streamscore.wire`), control notices
(:mod:`streamscore.control`), topic administration (:mod:`streamscore.kafka_admin`) and HTTP
helpers (:mod:`streamscore.http_common`). The layers above it are ``broker``, ``model_store``,
``training``, ``worker``, ``producer`` and, on top, the command lines in ``app``.
"""

from streamscore.config import Config, load_config
from streamscore.exceptions import StreamscoreError

__all__ = ["Config", "StreamscoreError", "load_config"]
__version__ = "0.1.0"
