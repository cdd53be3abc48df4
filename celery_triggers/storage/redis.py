"""Redis storage (``redis://host:port/db``): production, many machines.

Atomicity: optimistic WATCH/MULTI on a per-session version key. A
transaction WATCHes the version, reads what it needs, and commits its writes
plus ``INCR version`` in one MULTI/EXEC; if another writer committed in
between, EXEC fails and the whole operation (engine included) re-runs on
fresh data. Chosen over a Lua script because the trigger semantics live in
the pure Python engine (one implementation for every backend), and over a
lock because a process killed mid-operation leaves nothing to expire: its
MULTI never ran. A fire costs three round trips (WATCH, GET, MULTI/EXEC).

Keys share the hash tag ``{<session digest>}``, so a session's keys live in
one slot and the backend works on Redis Cluster. Values are JSON.

URL options: ``?prefix=ct`` (key prefix). App setting
``triggers_session_ttl`` (seconds) expires a session that long after its
last change.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import StorageError
from ..state import Instance
from .base import Conflict, SessionTxn, StorageBackend, check_uid
from .kv import KVTxn, parse_state, session_digest

try:
    import redis
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Redis storage needs redis-py: pip install 'celery-triggers[redis]'") from exc

__all__ = ["RedisStorage"]


class RedisStorage(StorageBackend):
    def __init__(self, url: str, *, session_ttl: float | None = None, **_: Any):
        super().__init__(url)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.prefix = query.pop("prefix", "ct")
        self.session_ttl = int(session_ttl) if session_ttl else None
        client_url = urlunsplit(parts._replace(query=urlencode(query)))
        self.client = redis.Redis.from_url(client_url, socket_timeout=5, socket_connect_timeout=5)

    # -- keys ---------------------------------------------------------------
    def _keys(self, uid: str) -> tuple[str, str, str]:
        base = f"{self.prefix}:{{{session_digest(uid)}}}"
        return f"{base}:state", f"{base}:inst", f"{base}:version"

    def _error(self, uid: str | None, exc: Exception) -> StorageError:
        where = f"session {uid!r}: " if uid is not None else ""
        return StorageError(f"{where}Redis storage {self._safe_url()} failed: {exc}")

    def _safe_url(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        return f"redis://{host}:{parts.port or 6379}{parts.path}"

    # -- transactions -------------------------------------------------------
    @contextmanager
    def transaction(self, uid: str) -> Iterator[SessionTxn]:
        state_key, inst_key, version_key = self._keys(uid)
        try:
            with self.client.pipeline() as pipe:
                pipe.watch(version_key)  # type: ignore[no-untyped-call]
                state = parse_state(uid, pipe.get(state_key))

                def fetch(names: list[str]) -> dict[str, Any]:
                    return dict(zip(names, pipe.hmget(inst_key, names), strict=True))

                txn = KVTxn(uid, state, fetch)
                yield txn
                if not txn.changed:
                    return
                pipe.multi()
                if txn.state_dirty:
                    pipe.set(state_key, txn.state_text())
                if txn.instance_writes:
                    pipe.hset(inst_key, mapping=dict(txn.instance_writes))  # type: ignore[arg-type]
                if txn.instance_deletes:
                    pipe.hdel(inst_key, *txn.instance_deletes)
                pipe.incr(version_key)
                if self.session_ttl:
                    for key in (state_key, inst_key, version_key):
                        pipe.expire(key, self.session_ttl)
                pipe.execute()
        except redis.WatchError:
            time.sleep(random.uniform(0, 0.002))  # noqa: S311 - jitter, not crypto
            raise Conflict(uid) from None
        except redis.RedisError as exc:
            raise self._error(uid, exc) from exc

    # -- inspection and lifecycle --------------------------------------------
    def instances(self, uid: str) -> dict[str, Instance]:
        check_uid(uid)
        state_key, inst_key, _ = self._keys(uid)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.get(state_key)
                pipe.hgetall(inst_key)
                state_text, records = pipe.execute()
        except redis.RedisError as exc:
            raise self._error(uid, exc) from exc
        state = parse_state(uid, state_text)
        if state is None:
            return {}
        decoded = {k.decode() if isinstance(k, bytes) else k: v for k, v in records.items()}
        return KVTxn(uid, state, lambda names: {}).all_instances(decoded)

    def sessions(self) -> list[str]:
        uids = []
        try:
            for key in self.client.scan_iter(match=f"{self.prefix}:{{*}}:state", count=500):
                state = parse_state(str(key), self.client.get(key))
                if state is not None:
                    uids.append(state["uid"])
        except redis.RedisError as exc:
            raise self._error(None, exc) from exc
        return sorted(uids)

    def delete_session(self, uid: str) -> None:
        check_uid(uid)
        try:
            self.client.delete(*self._keys(uid))
        except redis.RedisError as exc:
            raise self._error(uid, exc) from exc

    def close(self) -> None:
        self.client.close()
