"""How many records a batch may take: a batch's work stays within the poll interval.

Kafka drops a member that does not poll for ``[kafka] max_poll_interval_ms``; its commit is then
refused and its batch scored again by the partitions' next owner. A model slow enough to take
longer than that for ``max_batch_records`` rows would loop forever (dropped, rescored, dropped).
:class:`BatchPacer` measures each model version's cost per row (a batch's scoring time over its
rows: a higher cost is taken at once, a lower one averaged in) and caps the batch so that
scoring one takes at most ``[worker] poll_budget_fraction`` of the poll interval (publishing
and committing get the rest). A version's first batch, before any measurement, is a small
probe (``PROBE_RECORDS``), so even a very slow model is not dropped for its first batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamscore.config import Config

#: Records of a version's first batch (its cost per row is not known yet).
PROBE_RECORDS = 32
#: Weight of the latest batch in the mean cost per row.
_ALPHA = 0.3


@dataclass
class BatchPacer:
    max_batch_records: int
    budget_s: float  # poll_budget_fraction x max_poll_interval_ms
    #: Seconds per row by model version (rises at once, falls as a weighted mean).
    per_row_s: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Config) -> BatchPacer:
        w = cfg.worker
        return cls(
            w.max_batch_records, cfg.kafka.max_poll_interval_ms / 1000 * w.poll_budget_fraction
        )

    def cap(self, version: str) -> int:
        """Most records the next batch of ``version`` may take."""
        cost = self.per_row_s.get(version)
        if cost is None:
            return min(self.max_batch_records, PROBE_RECORDS)
        if cost <= 0:
            return self.max_batch_records
        return max(1, min(self.max_batch_records, int(self.budget_s / cost)))

    def observe(self, version: str, rows: int, seconds: float) -> None:
        """A batch of ``rows`` records of ``version`` took ``seconds`` to score."""
        if rows <= 0:
            return
        cost = seconds / rows
        before = self.per_row_s.get(version)
        if before is None or cost > before:
            # A slowdown is believed at once: averaged in, a model that turned from fast to
            # slow would get a second batch too large for the poll interval (dropped again).
            self.per_row_s[version] = cost
        else:  # a speedup gradually
            self.per_row_s[version] = before + _ALPHA * (cost - before)
