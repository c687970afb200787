"""Predictions joined with their delayed labels, in one sqlite file that survives restarts.

Why stdlib :mod:`sqlite3` (in WAL mode): the state is a keyed table with a time index (pending
predictions by id, expiring by time), updated in batches, read by one process; sqlite gives
that with atomic multi-table transactions and no new dependency or server. WAL lets a reader
(``models show``, a test) read while the monitor writes; ``synchronous = NORMAL`` makes every
commit durable against a crash of the process (kill -9), which is the failure this state must
survive (a power cut may lose the last commits, which the consumer offsets stored in the same
transaction then replay).

Rules, all decided from record timestamps (never the wall clock), so replaying the same records
after a crash makes the same decisions:

* A prediction is kept for ``label_ttl_ms`` (default 7 days) after it was made. A label for it
  joins once; a second label for the same id is a **duplicate** and is ignored. A label that
  arrives more than ``label_ttl_ms`` after its prediction is **expired** and not joined.
* A label whose prediction has not arrived waits up to ``label_wait_ms`` (default 1 hour); if the
  prediction arrives in time the two join, otherwise the label is dropped as an **unknown id**.
* A second prediction with an id already held (a worker re-scoring after a crash) is a duplicate:
  the first one stays.
* Disk is bounded: beyond ``max_predictions`` held predictions the oldest are **evicted**.
* Consumer offsets are stored in the same transaction as the outcomes they produced
  (:meth:`JoinState.apply`), so after a crash the consumer resumes exactly after the last
  committed batch: nothing joined is lost and nothing is counted twice.

Storage per prediction: the id, the version, the time, the predicted class index (or value) and
the class probabilities as float32 (8 bytes for a binary model): 68 bytes on disk with the time
index (``python -m bench.monitor``: 1,000,000 pending predictions in 68.2 MB). A join never
rewrites the prediction's row (a random page write per label): the joined ids are kept as 63-bit
keys in an append-only table and, in memory, in a sorted numpy array (:class:`JoinedIds`,
16 bytes per id), which is what makes a label a cheap read.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sqlite3
from array import array
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.quality import CLASSIFICATION, REGRESSION, QualityAggregate, label_key
from streamscore import jsonio
from streamscore.exceptions import StreamscoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DAY_MS = 86_400_000
DEFAULT_LABEL_TTL_MS = 7 * DAY_MS
DEFAULT_LABEL_WAIT_MS = 3_600_000
DEFAULT_WINDOW_MS = 3_600_000
DEFAULT_MAX_PREDICTIONS = 1_000_000
_CHUNK = 900  # sqlite's default limit is 999 bound parameters per statement

COUNTERS = (
    "predictions",
    "duplicate_predictions",
    "labels",
    "joined",
    "duplicate_labels",
    "expired_labels",
    "unknown_labels",
    "waiting_labels_joined",
    "expired_predictions",
    "evicted_predictions",
    "unusable_labels",
)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    predicted_at INTEGER NOT NULL,
    value REAL NOT NULL,
    probs BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_by_time ON predictions (predicted_at);
CREATE TABLE IF NOT EXISTS pending_labels (
    id TEXT PRIMARY KEY, label TEXT NOT NULL, arrived_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_by_time ON pending_labels (arrived_at);
CREATE TABLE IF NOT EXISTS joined (key INTEGER NOT NULL, predicted_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS joined_by_time ON joined (predicted_at);
CREATE TABLE IF NOT EXISTS classes (version INTEGER PRIMARY KEY, classes TEXT);
CREATE TABLE IF NOT EXISTS windows (
    version INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    sums TEXT NOT NULL,
    positives BLOB NOT NULL,
    negatives BLOB NOT NULL,
    PRIMARY KEY (version, window_start)
);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


#: A held prediction: (version, predicted_at_ms, class index or value, float32 probs, labelled)
_Row = tuple[int, int, float, bytes | None, int]
#: How one version's records lay out: (classes, positions of their keys or None if in
#: class order, prediction value -> class index)
_Layout = tuple[int, list[int] | None, dict[Any, int]]


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) else label_key(value)


def id_key(prediction_id: str) -> int:
    """A stable 63-bit key of an id (blake2b): the joined marks keep keys, not ids. Two of a
    million ids share a key with probability about 5e-8."""
    digest = hashlib.blake2b(prediction_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little") & _KEY_MASK


_KEY_MASK = (1 << 63) - 1


class JoinedIds:
    """Keys of the ids joined with a label, with their prediction time, in memory: a sorted
    numpy array (16 bytes per id) and a small set of recent additions, merged when it grows."""

    _MERGE_AT = 50_000

    def __init__(self) -> None:
        self._keys = np.zeros(0, dtype=np.int64)
        self._times = np.zeros(0, dtype=np.int64)
        self._recent: dict[int, int] = {}

    def __len__(self) -> int:
        return int(self._keys.size) + len(self._recent)

    def add(self, items: Sequence[tuple[int, int]]) -> None:
        for key, at in items:
            self._recent[int(key)] = int(at)
        if len(self._recent) >= self._MERGE_AT:
            self._merge()

    def _merge(self) -> None:
        if not self._recent:
            return
        keys = np.concatenate([self._keys, np.fromiter(self._recent, dtype=np.int64)])
        times = np.concatenate([self._times, np.fromiter(self._recent.values(), dtype=np.int64)])
        order = np.argsort(keys, kind="stable")
        self._keys, self._times = keys[order], times[order]
        self._recent = {}

    def contains(self, keys: Sequence[int]) -> np.ndarray:
        wanted = np.asarray(keys, dtype=np.int64)
        found = np.zeros(wanted.size, dtype=bool)
        if self._keys.size:
            at = np.searchsorted(self._keys, wanted).clip(0, self._keys.size - 1)
            found = self._keys[at] == wanted
        if self._recent:
            found |= np.fromiter((int(k) in self._recent for k in keys), dtype=bool)
        return found

    def expire(self, cutoff_ms: int) -> None:
        """Forget ids whose prediction is older than ``cutoff_ms``."""
        if self._times.size and int(self._times.min()) < cutoff_ms:
            keep = self._times >= cutoff_ms
            self._keys, self._times = self._keys[keep], self._times[keep]
        if self._recent and min(self._recent.values()) < cutoff_ms:
            self._recent = {k: t for k, t in self._recent.items() if t >= cutoff_ms}


class JoinStateError(StreamscoreError):
    """The join state file cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Prediction:
    """A prediction as read from the output topic."""

    id: str
    version: int
    predicted_at_ms: int
    prediction: Any
    probabilities: Mapping[str, float] | None = None
    task: str = CLASSIFICATION


@dataclass(frozen=True)
class Label:
    """A label from the labels topic; ``arrived_at_ms`` is its record's timestamp."""

    id: str
    label: Any
    arrived_at_ms: int


@dataclass
class ApplyResult:
    """What one :meth:`JoinState.apply` did (also added to the persistent counters)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    windows: set[tuple[int, int]] = field(default_factory=set)  # (version, window_start_ms)


class JoinState:
    """The join state in one sqlite file. Not thread-safe: one owner thread."""

    def __init__(
        self,
        path: Path,
        *,
        label_ttl_ms: int = DEFAULT_LABEL_TTL_MS,
        label_wait_ms: int = DEFAULT_LABEL_WAIT_MS,
        window_ms: int = DEFAULT_WINDOW_MS,
        max_predictions: int = DEFAULT_MAX_PREDICTIONS,
    ) -> None:
        self.path = Path(path)
        self.label_ttl_ms = label_ttl_ms
        self.label_wait_ms = label_wait_ms
        self.window_ms = window_ms
        self.max_predictions = max_predictions
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA busy_timeout = 10000")
            self._create()
        except sqlite3.DatabaseError as exc:
            raise JoinStateError(
                f"join state {self.path} is not usable ({exc}); stop the monitor, move the file "
                f"away and restart (the monitor re-reads the topics from their beginning)"
            ) from exc
        self._classes: dict[int, list[str]] = {
            int(v): list(jsonio.loads(c))
            for v, c in self.db.execute("SELECT version, classes FROM classes")
        }
        self._windows: dict[tuple[int, int], QualityAggregate] = self._load_windows()
        self.held = int(self.db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
        self._new_classes: dict[int, list[str]] = {}  # of the batch in flight
        self._held_delta = 0
        self._joins: list[tuple[_Row, Any]] = []  # outcomes of the batch in flight
        self._layouts: dict[tuple[int, tuple[str, ...]], _Layout] = {}
        self._label_keys: dict[Any, str] = {}
        self._new_joined: list[tuple[int, int]] = []
        self.joined_ids = JoinedIds()
        self.joined_ids.add(list(self.db.execute("SELECT key, predicted_at FROM joined")))

    def _create(self) -> None:
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                self.db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) != SCHEMA_VERSION:
                raise JoinStateError(
                    f"join state {self.path} has schema {row[0]}, this streamscore uses "
                    f"{SCHEMA_VERSION}: move the file away to start afresh"
                )
            settings = {"window_ms": str(self.window_ms)}
            for key, value in settings.items():
                stored = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
                if stored is None:
                    self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
                elif stored[0] != value:
                    raise JoinStateError(
                        f"join state {self.path} was built with {key} = {stored[0]}, the config "
                        f"now says {value}: windows cannot be re-cut; restore the setting or "
                        f"move the file away to start afresh"
                    )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ reading

    def offsets(self) -> dict[tuple[str, int], int]:
        """``(topic, partition) → next offset to read``, as of the last committed batch."""
        return {
            (str(t), int(p)): int(o)
            for t, p, o in self.db.execute("SELECT topic, partition, next_offset FROM offsets")
        }

    def counters(self) -> dict[str, int]:
        out = dict.fromkeys(COUNTERS, 0)
        out.update({str(n): int(v) for n, v in self.db.execute("SELECT name, value FROM counters")})
        return out

    def pending_labels(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM pending_labels").fetchone()[0])

    def window(self, version: int, window_start_ms: int) -> QualityAggregate:
        agg = self._windows.get((version, window_start_ms))
        out = QualityAggregate()
        if agg is not None:
            out.add(agg)
        return out

    def windows(self, version: int | None = None) -> list[tuple[int, int, QualityAggregate]]:
        """``(version, window_start_ms, aggregate)`` sorted by version then window."""
        return [
            (v, w, self.window(v, w))
            for v, w in sorted(self._windows)
            if version is None or v == version
        ]

    def versions(self) -> list[int]:
        return sorted({v for v, _ in self._windows})

    def cumulative(self, version: int) -> QualityAggregate:
        total = QualityAggregate()
        for (v, _), agg in self._windows.items():
            if v == version:
                total.add(agg)
        return total

    def decisions(self) -> list[tuple[int, int, str, str]]:
        """``(at_ms, version, action, reason)`` of every recorded rollback decision."""
        return [
            (int(a), int(v), str(act), str(r))
            for a, v, act, r in self.db.execute(
                "SELECT at_ms, version, action, reason FROM decisions ORDER BY seq"
            )
        ]

    def record_decision(self, at_ms: int, version: int, action: str, reason: str) -> None:
        with self._transaction():
            self.db.execute(
                "INSERT INTO decisions (at_ms, version, action, reason) VALUES (?, ?, ?, ?)",
                (at_ms, version, action, reason),
            )

    # ------------------------------------------------------------------ writing

    def window_start(self, predicted_at_ms: int) -> int:
        return predicted_at_ms - predicted_at_ms % self.window_ms

    def apply(
        self,
        predictions: Sequence[Prediction],
        labels: Sequence[Label],
        offsets: Mapping[tuple[str, int], int],
    ) -> ApplyResult:
        """Store predictions, join labels, and record ``offsets`` (next offset per partition
        read), all in one transaction: either all of it is on disk or none of it."""
        result = ApplyResult()
        touched: dict[tuple[int, int], QualityAggregate] = {}
        try:
            with self._transaction():
                held = self._insert_predictions(predictions, result, touched)
                self._join_labels(labels, held, result)
                self._record_joins(touched)
                self._evict(result)
                if offsets:
                    self.db.executemany(
                        "INSERT OR REPLACE INTO offsets (topic, partition, next_offset) "
                        "VALUES (?, ?, ?)",
                        [(t, p, o) for (t, p), o in offsets.items()],
                    )
                self._save(touched, result)
            # Memory follows the database only once the transaction is committed.
            self._classes.update(self._new_classes)
            self.held += self._held_delta
            self._windows.update(touched)
            self.joined_ids.add(self._new_joined)
        except BaseException:
            self._layouts.clear()  # may describe classes that were rolled back
            raise
        finally:
            self._new_classes = {}
            self._held_delta = 0
            self._joins = []
            self._new_joined = []
        result.windows = set(touched)
        return result

    def _aggregate(
        self, touched: dict[tuple[int, int], QualityAggregate], version: int, window_start: int
    ) -> QualityAggregate:
        key = (version, window_start)
        agg = touched.get(key)
        if agg is None:
            agg = self.window(*key)  # a copy: memory changes only after the commit
            touched[key] = agg
        return agg

    def _classes_now(self, version: int) -> list[str] | None:
        return self._new_classes.get(version) or self._classes.get(version)

    def _classes_of(self, version: int, prediction: Prediction) -> list[str]:
        """The version's class list, extended by this prediction's classes if it has new ones."""
        known = self._classes_now(version)
        keys = [label_key(k) for k in prediction.probabilities or ()]
        changed = known is None
        classes = list(keys) if known is None else list(known)
        for key in [*keys, label_key(prediction.prediction)]:
            if key not in classes:
                classes.append(key)
                changed = True
        if changed:
            self._new_classes[version] = classes
            self._layouts.clear()
            self.db.execute(
                "INSERT OR REPLACE INTO classes (version, classes) VALUES (?, ?)",
                (version, jsonio.dumps(classes).decode()),
            )
        return classes

    def _encode(self, p: Prediction) -> tuple[float, bytes | None]:
        """A classifier's prediction as (class index, float32 probabilities in class order).

        The layout of a version's records (their probability keys, in order) is looked up once
        and cached: the hot path is one dict lookup and one ``array.tobytes``.
        """
        keys = tuple(p.probabilities) if p.probabilities else ()
        layout = self._layouts.get((p.version, keys))
        index = None if layout is None else layout[2].get(_hashable(p.prediction))
        if layout is None or index is None:
            classes = self._classes_of(p.version, p)
            positions = [classes.index(label_key(k)) for k in keys]
            identity = positions == list(range(len(classes)))
            by_value = {_hashable(p.prediction): classes.index(label_key(p.prediction))}
            if layout is not None:
                by_value = {**layout[2], **by_value}
            layout = (len(classes), None if identity else positions, by_value)
            self._layouts[(p.version, keys)] = layout
            index = by_value[_hashable(p.prediction)]
        if not p.probabilities:
            return float(index), None
        size, order, _ = layout
        if order is None:
            return float(index), array("f", p.probabilities.values()).tobytes()
        vector = array("f", bytes(4 * size))
        for position, prob in zip(order, p.probabilities.values(), strict=True):
            vector[position] = prob
        return float(index), vector.tobytes()

    def _insert_predictions(
        self,
        predictions: Sequence[Prediction],
        result: ApplyResult,
        touched: dict[tuple[int, int], QualityAggregate],
    ) -> dict[str, _Row]:
        """Insert the new predictions; returns the rows as held, for labels in this batch."""
        held: dict[str, _Row] = {}
        if not predictions:
            return held
        ids = list(dict.fromkeys(p.id for p in predictions))
        existing = self._select_ids(ids, "predictions")
        rows = []
        counted: dict[tuple[int, int], int] = {}
        window_ms = self.window_ms
        for p in predictions:
            if p.id in existing or p.id in held:
                result.counts["duplicate_predictions"] += 1
                continue
            if p.task == REGRESSION:
                try:
                    value, probs = float(p.prediction), None
                except (TypeError, ValueError):
                    continue
            else:
                value, probs = self._encode(p)
            at = p.predicted_at_ms
            held[p.id] = (p.version, at, value, probs, 0)
            rows.append((p.id, p.version, at, value, probs))
            key = (p.version, at - at % window_ms)
            counted[key] = counted.get(key, 0) + 1
        result.counts["predictions"] += len(predictions)
        for (version, start), n in counted.items():
            self._aggregate(touched, version, start).predictions += n
        self.db.executemany(
            "INSERT INTO predictions (id, version, predicted_at, value, probs) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        self._held_delta += len(rows)
        # Labels that came first and waited for these predictions.
        waiting = self._select(
            list(held), "SELECT id, label, arrived_at FROM pending_labels WHERE id IN ({})"
        )
        joined: list[tuple[str, int]] = []
        done: list[tuple[str]] = []
        for label_id, label_json, arrived_at in waiting:
            version, predicted_at, value, probs, _ = held[label_id]
            done.append((label_id,))
            if predicted_at - int(arrived_at) > self.label_wait_ms:
                result.counts["unknown_labels"] += 1  # it waited longer than allowed
                continue
            if self._join(jsonio.loads(label_json), held[label_id], result):
                joined.append((label_id, predicted_at))
                held[label_id] = (version, predicted_at, value, probs, 1)
                result.counts["waiting_labels_joined"] += 1
        if done:
            self.db.executemany("DELETE FROM pending_labels WHERE id = ?", done)
        self._mark_joined(joined)
        return held

    def _join_labels(
        self,
        labels: Sequence[Label],
        held: dict[str, _Row],
        result: ApplyResult,
    ) -> None:
        if not labels:
            return
        ids = list(dict.fromkeys(label.id for label in labels))
        found: dict[str, _Row] = {
            str(i): (int(v), int(t), float(x), b, int(lab))
            for i, v, t, x, b, lab in self._select(
                [i for i in ids if i not in held],
                "SELECT id, version, predicted_at, value, probs, 0 FROM predictions "
                "WHERE id IN ({})",
            )
        }
        if found:
            marked = self.joined_ids.contains([id_key(i) for i in found])
            for (i, held_row), seen in zip(list(found.items()), marked.tolist(), strict=True):
                if seen:
                    found[i] = (held_row[0], held_row[1], held_row[2], held_row[3], 1)
        found.update(held)
        pending_now = self._select_ids([i for i in ids if i not in found], "pending_labels")
        joined: list[tuple[str, int]] = []
        waiting: list[tuple[str, str, int]] = []
        ttl = self.label_ttl_ms
        for label in labels:
            row = found.get(label.id)
            if row is None:
                if label.id in pending_now:
                    result.counts["duplicate_labels"] += 1
                    continue
                pending_now.add(label.id)
                waiting.append((label.id, jsonio.dumps(label.label).decode(), label.arrived_at_ms))
                continue
            if row[4]:
                result.counts["duplicate_labels"] += 1
                continue
            if label.arrived_at_ms - row[1] > ttl:
                result.counts["expired_labels"] += 1
                continue
            if self._join(label.label, row, result):
                joined.append((label.id, row[1]))
                found[label.id] = (row[0], row[1], row[2], row[3], 1)
        result.counts["labels"] += len(labels)
        self._mark_joined(joined)
        if waiting:
            self.db.executemany(
                "INSERT INTO pending_labels (id, label, arrived_at) VALUES (?, ?, ?)", waiting
            )

    def _mark_joined(self, joined: Sequence[tuple[str, int]]) -> None:
        """Remember that these ids have their label (append-only: no page of the predictions
        table is rewritten, which is what made a join cost a random page write)."""
        if not joined:
            return
        keys = [(id_key(i), at) for i, at in joined]
        self.db.executemany("INSERT INTO joined (key, predicted_at) VALUES (?, ?)", keys)
        self._new_joined.extend(keys)

    def _join(self, label: Any, row: _Row, result: ApplyResult) -> bool:
        """Queue the outcome of ``row`` joined with ``label``; False if the label is unusable
        (a regressor's label that is not a finite number)."""
        if self._classes_now(row[0]) is None:  # a regressor's version: no classes recorded
            try:
                number = float(label)
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                result.counts["unusable_labels"] += 1
                return False
        self._joins.append((row, label))
        result.counts["joined"] += 1
        return True

    def _record_joins(self, touched: dict[tuple[int, int], QualityAggregate]) -> None:
        """Add the queued outcomes to their windows' aggregates, one numpy pass per version."""
        by_version: dict[int, list[tuple[_Row, Any]]] = {}
        for item in self._joins:
            by_version.setdefault(item[0][0], []).append(item)
        for version, items in by_version.items():
            n = len(items)
            at = np.fromiter((row[1] for row, _ in items), dtype=np.int64, count=n)
            starts = at - at % self.window_ms
            values = np.fromiter((row[2] for row, _ in items), dtype=np.float64, count=n)
            classes = self._classes_now(version)
            groups = [(int(w), starts == w) for w in np.unique(starts)]
            if classes is None:
                truths = np.fromiter((float(lab) for _, lab in items), dtype=np.float64, count=n)
                errors = values - truths
                for start, mask in groups:
                    self._aggregate(touched, version, start).record_regression_batch(errors[mask])
                continue
            position = {key: i for i, key in enumerate(classes)}
            truth = np.fromiter(
                (position.get(self._label_key(lab), -1) for _, lab in items),
                dtype=np.int64,
                count=n,
            )
            predicted = values.astype(np.int64)
            width = 4 * len(classes)
            blank = bytes(width)
            has = np.fromiter(
                (row[3] is not None and len(row[3]) == width for row, _ in items),
                dtype=bool,
                count=n,
            )
            blobs = b"".join(
                row[3] if row[3] is not None and len(row[3]) == width else blank for row, _ in items
            )
            matrix = np.frombuffer(blobs, dtype="<f4").reshape(n, len(classes)).astype(np.float64)
            for start, mask in groups:
                agg = self._aggregate(touched, version, start)
                for subset, probabilities in ((mask & has, matrix), (mask & ~has, None)):
                    if subset.any():
                        agg.record_classification_batch(
                            predicted=predicted[subset],
                            truth=truth[subset],
                            probabilities=None if probabilities is None else matrix[subset],
                        )

    def _label_key(self, label: Any) -> str:
        try:
            key = self._label_keys.get(label)
        except TypeError:  # an unhashable label (a list): no cache
            return label_key(label)
        if key is None:
            key = self._label_keys[label] = label_key(label)
        return key

    def _evict(self, result: ApplyResult) -> None:
        over = self.held + self._held_delta - self.max_predictions
        if over <= 0:
            return
        cursor = self.db.execute(
            "DELETE FROM predictions WHERE id IN "
            "(SELECT id FROM predictions ORDER BY predicted_at LIMIT ?)",
            (over,),
        )
        self._held_delta -= cursor.rowcount
        result.counts["evicted_predictions"] += cursor.rowcount

    def expire(self, now_ms: int) -> dict[str, int]:
        """Drop predictions older than the TTL and labels that waited too long (one
        transaction). ``now_ms`` is stream time: the latest record timestamp seen."""
        counts = {"expired_predictions": 0, "unknown_labels": 0}
        with self._transaction():
            cursor = self.db.execute(
                "DELETE FROM predictions WHERE predicted_at < ?", (now_ms - self.label_ttl_ms,)
            )
            counts["expired_predictions"] = cursor.rowcount
            self.db.execute(
                "DELETE FROM joined WHERE predicted_at < ?", (now_ms - self.label_ttl_ms,)
            )
            cursor = self.db.execute(
                "DELETE FROM pending_labels WHERE arrived_at < ?", (now_ms - self.label_wait_ms,)
            )
            counts["unknown_labels"] = cursor.rowcount
            self._add_counters(counts)
        self.held -= counts["expired_predictions"]
        self.joined_ids.expire(now_ms - self.label_ttl_ms)
        return counts

    def _save(
        self, touched: Mapping[tuple[int, int], QualityAggregate], result: ApplyResult
    ) -> None:
        if touched:
            self.db.executemany(
                "INSERT OR REPLACE INTO windows (version, window_start, sums, positives, "
                "negatives) VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        v,
                        w,
                        jsonio.dumps(agg.to_dict()).decode(),
                        agg.positives.astype("<i8").tobytes(),
                        agg.negatives.astype("<i8").tobytes(),
                    )
                    for (v, w), agg in touched.items()
                ],
            )
        self._add_counters(result.counts)

    def _add_counters(self, counts: Mapping[str, int]) -> None:
        changed = [(name, n) for name, n in counts.items() if n]
        if changed:
            self.db.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                changed,
            )

    def _load_windows(self) -> dict[tuple[int, int], QualityAggregate]:
        out: dict[tuple[int, int], QualityAggregate] = {}
        for v, w, sums, pos, neg in self.db.execute(
            "SELECT version, window_start, sums, positives, negatives FROM windows"
        ):
            out[(int(v), int(w))] = QualityAggregate.from_dict(
                jsonio.loads(sums),
                np.frombuffer(pos, dtype="<i8"),
                np.frombuffer(neg, dtype="<i8"),
            )
        return out

    def _select(self, ids: Sequence[str], query: str) -> list[Any]:
        """Rows of ``query`` (with ``IN ({})``) for ``ids``, in chunks of bound parameters."""
        out: list[Any] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            out.extend(self.db.execute(query.format(",".join("?" * len(chunk))), chunk))
        return out

    def _select_ids(self, ids: Sequence[str], table: str) -> set[str]:
        rows = self._select(ids, f"SELECT id FROM {table} WHERE id IN ({{}})")  # noqa: S608
        return {str(r[0]) for r in rows}


def disk_bytes(path: Path) -> int:
    """Size of the state on disk: the database file and its WAL."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(f"{path}{suffix}")
        if candidate.exists():
            total += candidate.stat().st_size
    return total


def read_live(path: Path, version: int) -> QualityAggregate | None:
    """A version's cumulative live aggregate from a join state file, read-only (safe while the
    monitor writes: WAL); None when there is no state file or no window of that version."""
    if not Path(path).is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        rows = db.execute(
            "SELECT sums, positives, negatives FROM windows WHERE version = ?", (version,)
        ).fetchall()
    except sqlite3.Error as exc:
        log.warning("cannot read the join state %s: %s", path, exc)
        return None
    finally:
        db.close()
    if not rows:
        return None
    total = QualityAggregate()
    for sums, pos, neg in rows:
        total.add(
            QualityAggregate.from_dict(
                jsonio.loads(sums), np.frombuffer(pos, dtype="<i8"), np.frombuffer(neg, dtype="<i8")
            )
        )
    return total
