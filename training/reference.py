"""The reference profile stored with every version (``profile.json``): what the model was
trained on, for drift (:mod:`monitor.profile` builds it, workers and the monitor compare live
traffic with it).

:func:`reference_profile` profiles the rows the model learnt from (numeric features: quantile
bins, mean, std, missing rate; categorical: the most frequent values) and the model's
predictions on the held-out rows. A profile that cannot be built (an exotic column type) is
left out with a warning: the version is still registered, only without drift counting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from model_store import FeatureSpec
from monitor.profile import PROFILE_FILE, build_profile, profile_bytes

log = logging.getLogger(__name__)


def reference_profile(
    model: Any,
    schema: Sequence[FeatureSpec],
    rows: Any,
    held_out: Any | None,
    *,
    task: str,
) -> dict[str, bytes]:
    """``{"profile.json": ...}`` for ``register(files=...)``, or ``{}`` when it cannot be
    built. ``rows`` and ``held_out`` are a DataFrame or a 2-D array in the schema's column
    order, as the model takes them."""
    try:
        predictions = model.predict(held_out) if held_out is not None else None
        profile = build_profile(_columns(rows, schema), schema, predictions=predictions, task=task)
    except Exception as exc:  # noqa: BLE001 - a profile is optional; the version is not
        log.warning(
            "no reference profile stored with this version (%s: %s); workers and the monitor "
            "will not count drift for it",
            type(exc).__name__,
            exc,
        )
        return {}
    return {PROFILE_FILE: profile_bytes(profile)}


def _columns(rows: Any, schema: Sequence[FeatureSpec]) -> Any:
    """A DataFrame as it is; a 2-D array as ``name -> column`` in the schema's order."""
    if hasattr(rows, "columns"):
        return rows
    return {spec.name: rows[:, index] for index, spec in enumerate(schema)}
