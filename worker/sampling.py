"""Which events a shadow or a canary scores: a stable hash of the event id, the same on every
worker, in every process and after every restart.

:func:`id_share` maps an id to a number in [0, 1) from the first 8 bytes of the blake2b digest of
its text (``str(id)``, as the monitor keys ids). The shadow takes the ids whose share is below
``[worker] shadow_fraction``; the canary those at or above ``1 - canary_fraction``, so with both
on, and fractions that sum to at most 1, no id is both shadowed and a canary's.
"""

from __future__ import annotations

import hashlib
from typing import Any

_SCALE = float(1 << 64)


def id_share(ident: Any) -> float:
    """The id's place in [0, 1): uniform over ids, stable for a given id."""
    text = ident if isinstance(ident, str) else str(ident)
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def in_shadow(ident: Any, fraction: float) -> bool:
    return fraction >= 1.0 or id_share(ident) < fraction


def in_canary(ident: Any, fraction: float) -> bool:
    return fraction > 0.0 and id_share(ident) >= 1.0 - fraction


__all__ = ["id_share", "in_canary", "in_shadow"]
