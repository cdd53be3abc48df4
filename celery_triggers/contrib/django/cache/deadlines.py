"""The deadline index on the Django cache (see
``celery_triggers.storage.deadlines``).

On a Redis-backed cache: the Redis layout's sorted set. Through the cache
API: time buckets of :data:`BUCKET` seconds, one key each (a dict of entry
-> due time), and a cursor key naming the earliest bucket that may hold an
entry. A sweep reads the buckets from the cursor to now in one
``get_many``: its cost grows with the entries due and the minutes since the
earliest one, never with the sessions. Changes to the buckets and the
cursor are made under one lock (the session lock of an internal session).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ....core.data import dumps, loads
from ....core.state import INTERNAL_PREFIX
from ....storage.deadlines import DeadlineEntry

if TYPE_CHECKING:
    from ....storage.base import StorageBackend

__all__ = ["BUCKET", "MAX_BUCKETS", "CacheDeadlines"]

#: Seconds of due time per bucket.
BUCKET = 60
#: Most buckets one sweep reads (a week): older ones are read by the next sweeps.
MAX_BUCKETS = 7 * 24 * 60
_LOCK_UID = INTERNAL_PREFIX + "deadlines"


def _bucket(due: float) -> int:
    return math.floor(due / BUCKET)


class CacheDeadlines:
    """Mixed into :class:`~.backend.DjangoCacheStorage`."""

    if TYPE_CHECKING:  # the storage's own
        prefix: str

        @property
        def cache(self) -> Any: ...

        @property
        def redis(self) -> StorageBackend | None: ...

        def _locked(self, uid: str, kind: str = "lock") -> AbstractContextManager[Any]: ...

    def _deadline_key(self, part: str | int) -> str:
        return f"{self.prefix}:deadlines:{part}"

    def _get(self, key: str) -> Any:
        """A value of the index (JSON text, as every value this storage writes)."""
        text = self.cache.get(key)
        return None if text is None else loads(text)

    def _set(self, key: str, value: Any) -> None:
        self.cache.set(key, dumps(value), timeout=None)

    def _buckets(self, first: int, last: int) -> Iterator[tuple[int, dict[str, float]]]:
        keys = {self._deadline_key(b): b for b in range(first, last + 1)}
        found = self.cache.get_many(list(keys))
        for key, number in keys.items():
            yield number, dict(loads(found[key]) if key in found else {})

    def index_deadlines(self, uid: str, due: Mapping[str, float]) -> None:
        if self.redis is not None:
            return self.redis.index_deadlines(uid, due)
        with self._locked(_LOCK_UID):
            by_bucket: dict[int, dict[str, float]] = {}
            for name, when in due.items():
                by_bucket.setdefault(_bucket(when), {})[dumps([uid, name])] = float(when)
            for number, entries in by_bucket.items():
                key = self._deadline_key(number)
                self._set(key, {**(self._get(key) or {}), **entries})
            cursor = self._get(self._deadline_key("first"))
            if cursor is None or min(by_bucket) < cursor:
                self._set(self._deadline_key("first"), min(by_bucket))
        return None

    def due_deadlines(self, now: float, limit: int = 500) -> list[DeadlineEntry]:
        if self.redis is not None:
            return self.redis.due_deadlines(now, limit)
        cursor = self._get(self._deadline_key("first"))
        if cursor is None or cursor > _bucket(now):
            return []
        entries: list[DeadlineEntry] = []
        empty_until: int | None = cursor
        for number, bucket in self._buckets(cursor, min(_bucket(now), cursor + MAX_BUCKETS - 1)):
            if bucket:
                empty_until = None
            elif empty_until is not None:
                empty_until = number + 1
            for member, when in bucket.items():
                if when <= now:
                    uid, name = loads(member)
                    entries.append((str(uid), str(name), float(when)))
        if empty_until is not None and empty_until > cursor:
            self._advance(cursor, empty_until)
        return sorted(entries, key=lambda e: (e[2], e[0], e[1]))[:limit]

    def _advance(self, seen: int, to: int) -> None:
        """Move the cursor past empty buckets, unless an index moved it meanwhile."""
        with self._locked(_LOCK_UID):
            if self._get(self._deadline_key("first")) == seen:
                self._set(self._deadline_key("first"), to)

    def drop_deadline(self, uid: str, name: str, due: float) -> None:
        if self.redis is not None:
            return self.redis.drop_deadline(uid, name, due)
        key, member = self._deadline_key(_bucket(due)), dumps([uid, name])
        with self._locked(_LOCK_UID):
            bucket = self._get(key) or {}
            if bucket.get(member) == due:
                del bucket[member]
                if bucket:
                    self._set(key, bucket)
                else:
                    self.cache.delete(key)
        return None
