"""Who a worker process is in its consumer group, and what the broker lets it promise.

* :func:`instance_name`: ``[kafka] instance_id`` filled in for process ``index`` (default
  ``<group>-<host>-<index>``): stable across restarts of that process, so it serves as the
  ``group.instance.id`` (static membership: a restarted process gets its partitions back
  without a group-wide rebalance) and, in exactly-once mode, as the ``transactional.id``
  (a restarted process fences its predecessor's unfinished transaction).
* :func:`plan_membership`: static membership on or off, exactly-once allowed or refused, decided
  once per process from the config and the broker (its cluster id tells Tansu apart).
* :class:`FenceWatch`: a static member fenced again and again shares its name with another
  process; the worker stops with :class:`~streamscore.exceptions.WorkerConflict` naming it.

Measured with two kafka-python members, one restarted (``docs`` in README, broker notes):
Apache Kafka 4.4.0 gives the restarted member its partitions back in 0.4 s with no rebalance of
the other (8.2 s and two rebalances without). Tansu 0.6.0 rebalances the whole group anyway and
takes 14.5 s with it (5.7 s without), so ``auto`` leaves it off there.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from streamscore.config import Config
from streamscore.exceptions import ConfigError, WorkerConflict


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


class FenceWatch:
    """Tells a fence that a new client pair gets over from a name two processes share.

    The group coordinator fences a static member when another consumer joins with its
    ``group.instance.id``. After a broker restart librdkafka's member can be fenced once by its
    own rejoin; new clients fix that. Two processes with one name fence each other in turn, for
    ever: the ``limit``-th fence within ``window_s`` raises :class:`WorkerConflict`, so one of
    them stops, says why, and the other keeps the partitions.
    """

    def __init__(
        self,
        cfg: Config,
        instance: str,
        *,
        limit: int = 3,
        window_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.instance = instance
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque(maxlen=limit)

    def fenced(self) -> int:
        """Count one fence; how many fell within the window. Raises :class:`WorkerConflict`
        at ``limit``."""
        now = self._clock()
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        count = len(self._times)
        if count >= self.limit:
            k = self.cfg.kafka
            raise WorkerConflict(
                f"another process uses this worker's static member name {self.instance!r} in "
                f"group {k.group_id!r}: the broker fenced this worker {count} times in "
                f"{now - self._times[0]:.0f} s, each time a consumer with the same "
                f"group.instance.id joined. Give every worker process its own name: "
                f"[kafka] instance_id = {k.instance_id!r} must differ between processes "
                f"(keep {{index}} in it; on hosts that share a hostname, or two supervisors on "
                f"one host, put something unique in it, e.g. via "
                f'STREAMSCORE__KAFKA__INSTANCE_ID), or set [kafka] static_membership = "off". '
                f"Not restarting: a restart would fence the other process again"
            )
        return count
