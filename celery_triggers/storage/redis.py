"""Redis storage (``redis://host:port/db``): production, many machines.

Atomicity: optimistic concurrency on a per-session version number. A
transaction reads the version, the session state and the instances it names
in one MULTI/EXEC round trip, runs the pure engine, and commits with one
Lua script that applies the writes only if the version is still the one it
read (compare-and-set), bumping it. If another writer committed in between,
the script changes nothing and the whole operation (engine included) re-runs
on fresh data. So a fire or a start costs two round trips. A transaction
that resumes from this process's previous commit on the session (the
worker's finish after its start) skips the read: one round trip, or three
when another writer got in between.

Why not Lua alone: the trigger semantics live in the pure Python engine (one
implementation for every backend). Why not a lock: a process killed in the
middle leaves nothing to expire, since its commit never ran. Why not
WATCH/MULTI: it needs a round trip for WATCH and one per read (redis-py runs
commands one by one while watching); the version check does the same job in
the commit itself.

Keys share the hash tag ``{<session digest>}``, so a session's keys live in
one slot and the backend works on Redis Cluster. Values are JSON.

URL options: ``?prefix=ct`` (key prefix). App setting
``triggers_session_ttl`` (seconds) expires a session that long after its
last change.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import StorageError, StorageUnavailable
from ..state import Instance
from .base import Conflict, SessionTxn, StorageBackend, check_uid
from .kv import KVTxn, parse_state, session_digest, session_instances

try:
    import redis
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Redis storage needs redis-py: pip install 'celery-triggers[redis]'") from exc

__all__ = ["RedisStorage"]

#: Apply a transaction's writes if the session's version is unchanged.
#: KEYS: state, instance hash, version. ARGV: expected version, ttl (0: none),
#: state text ("" : unchanged), number of instance writes, then name/text
#: pairs, then names of instance records to delete.
_COMMIT = """
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' then redis.call('SET', KEYS[1], ARGV[3]) end
local writes = tonumber(ARGV[4])
local first_delete = 5 + 2 * writes
for i = 5, first_delete - 1, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
for i = first_delete, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
redis.call('INCR', KEYS[3])
local ttl = tonumber(ARGV[2])
if ttl > 0 then for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end end
return 1
"""


@dataclass
class _Cached:
    """The session as this process left it: version, state, instance records."""

    uid: str
    version: int
    state: dict[str, Any]
    records: dict[str, Any]


class RedisStorage(StorageBackend):
    def __init__(self, url: str, *, session_ttl: float | None = None, **_: Any):
        super().__init__(url)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.prefix = query.pop("prefix", "ct")
        self.session_ttl = int(session_ttl) if session_ttl else None
        client_url = urlunsplit(parts._replace(query=urlencode(query)))
        self.client = redis.Redis.from_url(client_url, socket_timeout=5, socket_connect_timeout=5)
        self._commit = self.client.register_script(_COMMIT)

    # -- keys ---------------------------------------------------------------
    def _keys(self, uid: str) -> tuple[str, str, str]:
        base = f"{self.prefix}:{{{session_digest(uid)}}}"
        return f"{base}:state", f"{base}:inst", f"{base}:version"

    def _error(self, uid: str | None, exc: Exception) -> StorageError:
        where = f"session {uid!r}: " if uid is not None else ""
        unreachable = isinstance(exc, (redis.ConnectionError, redis.TimeoutError))
        return (StorageUnavailable if unreachable else StorageError)(
            f"{where}Redis storage {self._safe_url()} failed: {exc}"
        )

    def _safe_url(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        return f"redis://{host}:{parts.port or 6379}{parts.path}"

    # -- transactions -------------------------------------------------------
    @contextmanager
    def transaction(
        self, uid: str, prefetch: Collection[str] = (), cached: _Cached | None = None
    ) -> Iterator[SessionTxn]:
        keys = self._keys(uid)
        state_key, inst_key, version_key = keys
        state: dict[str, Any] | None
        try:
            if isinstance(cached, _Cached) and cached.uid == uid:
                # A copy: a transaction changes its state in place, and one whose commit
                # failed must not leave its changes in what the next attempt starts from.
                version, known = cached.version, dict(cached.records)
                state = {k: dict(v) if isinstance(v, dict) else v for k, v in cached.state.items()}
            else:
                names = sorted(prefetch)
                with self.client.pipeline(transaction=True) as pipe:
                    pipe.get(version_key)
                    pipe.get(state_key)
                    if names:
                        pipe.hmget(inst_key, names)
                    raw_version, state_text, *rest = pipe.execute()
                version = int(raw_version or 0)
                state = parse_state(uid, state_text)
                known = dict(zip(names, rest[0], strict=True)) if names else {}

            def fetch(wanted: list[str]) -> dict[str, Any]:
                missing = [n for n in wanted if n not in known]
                if missing:
                    known.update(zip(missing, self.client.hmget(inst_key, missing), strict=True))
                return {n: known[n] for n in wanted}

            txn = KVTxn(uid, state, fetch)
            yield txn
            if txn.changed:
                args: list[Any] = [str(version), self.session_ttl or 0]
                args.append(txn.state_text() if (txn.state_dirty or txn.is_new) else "")
                args.append(len(txn.instance_writes))
                for name, text in txn.instance_writes.items():
                    args += [name, text]
                args += sorted(txn.instance_deletes)
                if not self._commit(keys=list(keys), args=args):
                    raise Conflict(uid)
                version += 1
                known.update(txn.instance_writes)
                for name in txn.instance_deletes:
                    known.pop(name, None)
            if txn.changed or not txn.is_new:  # the session exists as `known` describes it
                txn.after_commit = _Cached(uid, version, txn.state, known)
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
        return session_instances(uid, state, decoded)

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
