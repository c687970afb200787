"""Moving an alias and telling the workers: the one path every promotion and rollback takes.

The store is the source of truth: the alias moves there first (atomically), then an
alias-moved notice on ``[kafka] control_topic`` tells running workers to reload now instead
of on their next store poll. The notice is best effort: when Kafka is unreachable the move
still stands and workers pick it up by polling.

Used by ``streamscore models promote|rollback``, training (after the gate passed), the demo
and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_store.aliases import AliasEvent
from model_store.store import ModelStore
from streamscore.config import KafkaConfig
from streamscore.control import announce_alias_move

#: Seconds to wait for the broker to acknowledge a notice.
ANNOUNCE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class AliasMove:
    """An alias move and whether the workers were told (False: they see it on their next poll)."""

    event: AliasEvent
    announced: bool


def announce(
    store: ModelStore,
    kafka: KafkaConfig,
    event: AliasEvent,
    *,
    timeout_s: float = ANNOUNCE_TIMEOUT_S,
) -> bool:
    """Publish the notice for a move already made in ``store``; True when acknowledged."""
    return announce_alias_move(
        kafka, model=store.name, alias=event.alias, version=event.to_version, timeout_s=timeout_s
    )


def promote_and_announce(
    store: ModelStore,
    kafka: KafkaConfig,
    ref: int | str,
    alias: str,
    *,
    reason: str = "",
    timeout_s: float = ANNOUNCE_TIMEOUT_S,
) -> AliasMove:
    """Point ``alias`` at version ``ref`` (verified first), then announce the move."""
    event = store.promote(ref, alias, reason=reason)
    return AliasMove(event, announce(store, kafka, event, timeout_s=timeout_s))


def rollback_and_announce(
    store: ModelStore,
    kafka: KafkaConfig,
    alias: str,
    *,
    reason: str = "",
    timeout_s: float = ANNOUNCE_TIMEOUT_S,
) -> AliasMove:
    """Return ``alias`` to its previous version, then announce the move."""
    event = store.rollback(alias, reason=reason)
    return AliasMove(event, announce(store, kafka, event, timeout_s=timeout_s))
