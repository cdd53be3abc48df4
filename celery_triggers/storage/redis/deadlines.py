"""The deadline index on Redis: one sorted set (``<prefix>:deadlines``,
members ``[uid, name]`` as JSON, scored by due time), apart from the
session keys. A sweep reads the due entries with one ``ZRANGEBYSCORE``
(its cost grows with the entries due, not with the sessions); an entry is
dropped by a script only while its score is still the due time read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...core.data import dumps, loads
from ...core.errors import StorageError
from ..deadlines import DeadlineEntry
from .layout import text
from .scripts import CLIENT_ERRORS

__all__ = ["RedisDeadlines"]

#: Remove member ARGV[1] if its score is still ARGV[2].
_DROP = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""


class RedisDeadlines:
    """Mixed into :class:`~.client.RedisStorage` (its client, prefix and errors)."""

    if TYPE_CHECKING:  # the storage's own
        client: Any
        prefix: str

        def error(self, uid: str | None, exc: Exception) -> StorageError: ...

    _drop_script: Any = None

    @property
    def deadlines_key(self) -> str:
        return f"{self.prefix}:deadlines"

    def index_deadlines(self, uid: str, due: Mapping[str, float]) -> None:
        try:
            self.client.zadd(self.deadlines_key, {dumps([uid, name]): float(when) for name, when in due.items()})
        except CLIENT_ERRORS as exc:
            raise self.error(uid, exc) from exc

    def due_deadlines(self, now: float, limit: int = 500) -> list[DeadlineEntry]:
        try:
            rows = self.client.zrangebyscore(self.deadlines_key, "-inf", now, start=0, num=limit, withscores=True)
        except CLIENT_ERRORS as exc:
            raise self.error(None, exc) from exc
        entries: list[DeadlineEntry] = []
        for member, score in rows:
            uid, name = loads(text(member))
            entries.append((str(uid), str(name), float(score)))
        return entries

    def drop_deadline(self, uid: str, name: str, due: float) -> None:
        if self._drop_script is None:
            self._drop_script = self.client.register_script(_DROP)
        try:
            self._drop_script(keys=[self.deadlines_key], args=[dumps([uid, name]), repr(float(due))])
        except CLIENT_ERRORS as exc:
            raise self.error(uid, exc) from exc
