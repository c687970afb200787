"""Where a model is swapped: between batches, to the model the reloader prepared.

The reloader (:mod:`worker.reloader`) loads, verifies and smoke-tests a newly promoted model in
its own thread; the scoring thread calls :func:`swap_between_batches` before each batch, so a
batch is always scored by one model from start to end.
"""

from __future__ import annotations

import gc
import logging

from worker.processor import ServingModel
from worker.reloader import ModelReloader

log = logging.getLogger(__name__)


def swap_between_batches(
    reloader: ModelReloader, serving: ServingModel | None
) -> ServingModel | None:
    """The model to serve from now on if the reloader prepared one, else None (keep ``serving``)."""
    pending = reloader.take_pending()
    if pending is None:
        return None
    # The model and its imports live as long as the process: keep them out of the cyclic
    # garbage collector's scans (measured +19 % events/s on kafka-python, +37 % on
    # confluent-kafka in bench/). Unfreeze first so the previous model can be collected.
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    if serving is None:
        log.info("serving %s (alias %r)", pending.label, pending.alias)
    elif serving.version != pending.version:
        log.info("swapped %s -> %s between batches", serving.label, pending.label)
    return pending
