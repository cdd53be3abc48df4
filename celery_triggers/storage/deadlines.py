"""The deadline index: which instances have a deadline, by due time.

Storage only indexes due times; the engine decides what a passed deadline
does (``engine.expire``). Each backend keeps the index apart from its
session records (its own key, table or buckets), in a structure a sweep
reads by due time without scanning the sessions: a sorted list here
(memory), an indexed table on SQL, a sorted set on Redis, time buckets on
the Django cache.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping

__all__ = ["DeadlineEntry", "SortedDeadlines"]

#: One entry: (session UID, instance name, due time).
DeadlineEntry = tuple[str, str, float]


class SortedDeadlines:
    """An in-process index: entries sorted by due time (memory storage)."""

    def __init__(self) -> None:
        self._due: dict[tuple[str, str], float] = {}
        self._sorted: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()

    def index_deadlines(self, uid: str, due: Mapping[str, float]) -> None:
        with self._lock:
            for name, when in due.items():
                self._remove(uid, name)
                self._due[(uid, name)] = float(when)
                bisect.insort(self._sorted, (float(when), uid, name))

    def due_deadlines(self, now: float, limit: int = 500) -> list[DeadlineEntry]:
        with self._lock:
            end = bisect.bisect_right(self._sorted, (now, "\U0010ffff", "\U0010ffff"))
            return [(uid, name, when) for when, uid, name in self._sorted[: min(end, limit)]]

    def drop_deadline(self, uid: str, name: str, due: float) -> None:
        with self._lock:
            if self._due.get((uid, name)) == due:
                self._remove(uid, name)

    def _remove(self, uid: str, name: str) -> None:
        when = self._due.pop((uid, name), None)
        if when is not None:
            at = bisect.bisect_left(self._sorted, (when, uid, name))
            if at < len(self._sorted) and self._sorted[at] == (when, uid, name):
                del self._sorted[at]
