"""Who a worker process is in its consumer group, and what the broker lets it promise.

* :func:`instance_name`: ``[kafka] instance_id`` filled in for process ``index`` (default
  ``<group>-<host>-<index>``): stable across restarts of that process, so it serves as the
  ``group.instance.id`` (static membership: a restarted process gets its partitions back
  without a group-wide rebalance) and, in exactly-once mode, as the ``transactional.id``
  (a restarted process fences its predecessor's unfinished transaction).
* :func:`plan_membership`: static membership on or off, exactly-once allowed or refused, decided
  once per process from the config and the broker (its cluster id tells Tansu apart).

Measured with two kafka-python members, one restarted (``docs`` in README, broker notes):
Apache Kafka 4.4.0 gives the restarted member its partitions back in 0.4 s with no rebalance of
the other (8.2 s and two rebalances without). Tansu 0.6.0 rebalances the whole group anyway and
takes 14.5 s with it (5.7 s without), so ``auto`` leaves it off there.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from streamscore.config import Config
from streamscore.exceptions import ConfigError


def instance_name(cfg: Config, index: int, host: str | None = None) -> str:
    """``[kafka] instance_id`` for worker process ``index`` on ``host`` (default: this host)."""
    return cfg.kafka.instance_id.format(
        group=cfg.kafka.group_id, host=host or socket.gethostname(), index=index
    )


@dataclass(frozen=True)
class Membership:
    """How one worker process joins its group and publishes."""

    instance: str
    """Its stable name (see :func:`instance_name`)."""
    static: bool
    """Join with ``group.instance.id = instance``."""
    exactly_once: bool
    """Publish in transactions with ``transactional.id = transactional_id``."""

    @property
    def group_instance_id(self) -> str | None:
        return self.instance if self.static else None

    @property
    def transactional_id(self) -> str:
        return f"{self.instance}.txn"


def plan_membership(cfg: Config, index: int) -> Membership:
    """Decide static membership and delivery for process ``index``; asks the broker only when
    ``static_membership = "auto"`` or ``delivery = "exactly-once"``.

    Raises :class:`ConfigError` for exactly-once on a broker that cannot honour it.
    """
    k, w = cfg.kafka, cfg.worker
    exactly_once = w.delivery == "exactly-once"
    tansu: bool | None = None
    if k.static_membership == "auto" or exactly_once:
        from streamscore.kafka_admin import is_tansu  # kafka-python: only when asked

        tansu = is_tansu(k)
    if exactly_once and tansu:
        raise ConfigError(
            f'[worker] delivery = "exactly-once" needs a broker whose read_committed readers '
            f"skip aborted transactions; {k.bootstrap_servers} is the embedded Tansu broker, "
            f"which shows them (a crash would leave duplicates that read_committed readers "
            f"see). Use Apache Kafka (`streamscore broker start --engine kafka`, or your "
            f'cluster), or set delivery = "at-least-once"'
        )
    static = k.static_membership == "on" or (k.static_membership == "auto" and not tansu)
    return Membership(instance_name(cfg, index), static=static, exactly_once=exactly_once)
