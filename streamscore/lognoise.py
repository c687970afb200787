"""Kafka clients' own log lines, condensed to one line per state change.

While a broker is away kafka-python logs the same warning for every connection attempt (about
20 lines per attempt to a refused port, with changing node ids, ports and delays), and under
load its "blocking the event loop" warning repeats with a new duration each time. The
operator needs to know *that* it happens and when it stops, not every repetition.

:class:`CondensingFilter` passes a record of a watched logger only when its *shape* (the
message with numbers and hex ids blanked) differs from the last shape that logger passed, or
when ``repeat_after_s`` has gone by since. A record that passes after suppressed ones says how
many were left out. streamscore's own loggers are never filtered.
"""

from __future__ import annotations

import logging
import re
import threading
import time

_VARIABLE = re.compile(r"0x[0-9a-f]+|[0-9a-f]{8,}|\d+(\.\d+)?", re.IGNORECASE)

#: Attribute on a record that remembers the decision, for the next handler of the same record.
_DECIDED = "streamscore_condensed"

#: Loggers of the Kafka clients (kafka-python's ``kafka.*``; the confluent transport's).
WATCHED = ("kafka", "confluent_kafka", "worker.confluent_io.librdkafka")


def shape(message: str) -> str:
    """The message with what changes between repetitions (numbers, ids) blanked."""
    return _VARIABLE.sub("#", message)


class CondensingFilter(logging.Filter):
    def __init__(self, repeat_after_s: float = 300.0, watched: tuple[str, ...] = WATCHED) -> None:
        super().__init__()
        self.repeat_after_s = repeat_after_s
        self.watched = watched
        self._lock = threading.Lock()
        self._last: dict[str, tuple[str, float]] = {}
        self._suppressed: dict[str, int] = {}

    def _root(self, name: str) -> str | None:
        for root in self.watched:
            if name == root or name.startswith(root + "."):
                return root
        return None

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, _DECIDED, None)
        if decided is not None:  # the same record on the next handler: same answer
            return bool(decided)
        passed = self._decide(record)
        setattr(record, _DECIDED, passed)
        return passed

    def _decide(self, record: logging.LogRecord) -> bool:
        root = self._root(record.name)
        if root is None:
            return True
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a malformed client log call: let logging report it
            return True
        key = f"{record.levelno}:{shape(text)}"
        now = time.monotonic()
        with self._lock:
            last = self._last.get(root)
            if last is not None and last[0] == key and now - last[1] < self.repeat_after_s:
                self._suppressed[root] = self._suppressed.get(root, 0) + 1
                return False
            self._last[root] = (key, now)
            left_out = self._suppressed.pop(root, 0)
        if left_out:
            record.msg = f"{text} (after {left_out} similar line(s) left out)"
            record.args = None
        return True


_installed: CondensingFilter | None = None


def install(handlers: list[logging.Handler]) -> CondensingFilter:
    """Put one shared :class:`CondensingFilter` on ``handlers`` (what ``setup_logging`` made)."""
    global _installed
    if _installed is None:
        _installed = CondensingFilter()
    for handler in handlers:
        if _installed not in handler.filters:
            handler.addFilter(_installed)
    return _installed
