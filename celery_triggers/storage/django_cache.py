"""Django cache storage (``django-cache://<alias>``), the original framework's
``CacheStorageBackend``.

Django's cache API has no transactions, so each operation holds a
per-session lock:

* on Django's ``RedisCache`` (and django-redis), the client's native Redis
  lock (token-checked release in Lua);
* on any other cache, a lock built on ``cache.add`` (atomic on memcached,
  Redis and LocMem) with an expiry, so a process killed while holding it
  blocks the session for at most ``lock_timeout`` seconds.

Values are JSON text (see :mod:`celery_triggers.storage.kv` for the layout);
Django's cache layer itself serializes them with its own serializer (pickle
for most built-in caches), as it does every value your project caches. For a
storage path with no pickle at all, use ``redis://``.

URL options: ``?timeout=3600`` (seconds a session's data lives after its
last write; ``none`` for no expiry), ``?lock_timeout=10``, ``?prefix=ct``,
``?lock=add`` (use the ``cache.add`` lock even where a native one exists).
"""

from __future__ import annotations

import random
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._json import dumps, loads
from ..errors import StorageError
from ..state import Instance
from .base import Prefetch, SessionStorage, SessionTxn, StorageBackend, check_uid
from .kv import KVTxn, instance_names, parse_state, session_digest, session_instances

try:
    from django.core.cache import caches
    from django.core.cache.backends.base import BaseCache
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Django cache storage needs Django: pip install 'celery-triggers[django]'") from exc

__all__ = ["CacheStorageBackend", "DjangoCacheStorage"]

_DEFAULT_TIMEOUT = 3600.0
#: Buckets per (task, trigger) in the index of waiting instances.
BUCKETS = 32


def _float_or_none(value: Any) -> float | None:
    if value is None or str(value).lower() == "none":
        return None
    return float(value)


class DjangoCacheStorage(StorageBackend):
    """Sessions in a Django cache (``CACHES[alias]``)."""

    def __init__(
        self,
        url: str = "django-cache://default",
        *,
        timeout: float | None = _DEFAULT_TIMEOUT,
        lock_timeout: float = 10.0,
        session_ttl: float | None = None,
        **_: Any,
    ):
        super().__init__(url)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.alias = parts.netloc or "default"
        self.prefix = query.get("prefix", "ct")
        if "timeout" in query:
            timeout = _float_or_none(query["timeout"])
        elif session_ttl:
            timeout = float(session_ttl)
        self.timeout = timeout
        self.lock_timeout = float(query.get("lock_timeout", lock_timeout))
        self.lock_kind = query.get("lock", "auto")
        if self.lock_kind not in ("auto", "add"):
            raise StorageError(f"django-cache storage: lock must be 'auto' or 'add', got {self.lock_kind!r}")

    @property
    def cache(self) -> BaseCache:
        return caches[self.alias]

    def _key(self, uid: str, kind: str) -> str:
        return f"{self.prefix}:{session_digest(uid)}:{kind}"

    def _instance_key(self, uid: str, name: str) -> str:
        return self._key(uid, "i:" + session_digest(name))

    # -- locking ------------------------------------------------------------
    def _native_lock(self, name: str) -> AbstractContextManager[Any] | None:
        if self.lock_kind == "add":
            return None
        cache = self.cache
        timeout = max(self.lock_timeout, 0.001)
        if hasattr(cache, "lock"):  # django-redis
            return cache.lock(name, timeout=timeout, blocking_timeout=timeout * 3)  # type: ignore[no-any-return]
        client_of = getattr(getattr(cache, "_cache", None), "get_client", None)
        if client_of is not None:  # django.core.cache.backends.redis.RedisCache
            lock = client_of(name, write=True).lock(name, timeout=timeout, blocking_timeout=timeout * 3)
            return lock  # type: ignore[no-any-return]
        return None

    @contextmanager
    def _locked(self, uid: str, kind: str = "lock") -> Iterator[None]:
        name = self._key(uid, kind)
        native = self._native_lock(name)
        try:
            if native is not None:
                with native:
                    yield
                return
            token = uuid.uuid4().hex
            deadline = time.monotonic() + self.lock_timeout * 3
            ttl = max(1, int(self.lock_timeout + 0.999))
            while not self.cache.add(name, token, timeout=ttl):
                if time.monotonic() > deadline:
                    raise StorageError(
                        f"session {uid!r}: Django cache {self.alias!r} lock held by another process "
                        f"for more than {self.lock_timeout * 3:.0f}s"
                    )
                time.sleep(random.uniform(0.001, 0.01))  # noqa: S311 - jitter, not crypto
            try:
                yield
            finally:
                if self.cache.get(name) == token:
                    self.cache.delete(name)
        except StorageError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith(("redis", "django", "pymemcache", "pylibmc")) or isinstance(
                exc, (OSError, ConnectionError)
            ):
                raise StorageError(f"session {uid!r}: Django cache {self.alias!r} failed: {exc!r}") from exc
            raise

    # -- transactions -------------------------------------------------------
    def _bucket_key(self, uid: str, task: str, trigger: str, name: str | int) -> str:
        """The index of waiting instances, in buckets: a fire reads every
        bucket of its (task, trigger) in one ``get_many``, and a commit
        rewrites only the buckets it changed, each ~1/``BUCKETS`` of it."""
        bucket = name if isinstance(name, int) else zlib.crc32(name.encode("utf-8", "surrogatepass")) % BUCKETS
        return self._key(uid, f"w:{session_digest(task + chr(0) + trigger)}:{bucket}")

    @contextmanager
    def transaction(self, uid: str, prefetch: Prefetch = (), cached: object = None) -> Iterator[SessionTxn]:
        with self._locked(uid):
            cache = self.cache
            state_key = self._key(uid, "state")
            wanted = {self._instance_key(uid, n): n for n in prefetch if isinstance(n, str)}
            first = cache.get_many([state_key, *wanted])  # the state and the instances in one call
            state = parse_state(uid, first.get(state_key))
            prefetched = {wanted[k]: v for k, v in first.items() if k in wanted}
            buckets: dict[str, list[str]] = {}

            def fetch(names: list[str]) -> dict[str, Any]:
                found = {n: prefetched[n] for n in names if n in prefetched}
                keys = {self._instance_key(uid, n): n for n in names if n not in prefetched}
                if keys:
                    found.update({keys[k]: v for k, v in cache.get_many(list(keys)).items()})
                return found

            def fetch_waiting(pairs: list[tuple[str, str]]) -> dict[str, Any]:
                keys = [self._bucket_key(uid, t, x, b) for t, x in pairs for b in range(BUCKETS)]
                texts = cache.get_many([k for k in keys if k not in buckets])
                for key in keys:
                    if key not in buckets:
                        buckets[key] = loads(texts[key]) if key in texts else []
                names = sorted({n for key in keys for n in buckets[key]})
                return fetch(names) if names else {}

            txn = KVTxn(uid, state, fetch, fetch_waiting)
            yield txn
            if not txn.changed:
                return
            values = {self._instance_key(uid, n): text for n, text in txn.instance_writes.items()}
            values.update(self._index_changes(uid, txn, buckets))
            if txn.state_dirty or txn.is_new:
                values[self._key(uid, "state")] = txn.state_text()
            failed = cache.set_many(values, timeout=self.timeout)
            if failed:
                raise StorageError(f"session {uid!r}: Django cache {self.alias!r} did not store {len(failed)} key(s)")
        if txn.is_new:
            self._index(uid, add=True)

    def _index_changes(self, uid: str, txn: KVTxn, buckets: dict[str, list[str]]) -> dict[str, str]:
        """The index buckets a commit rewrites (reading those it has not)."""
        changes: dict[str, tuple[set[str], set[str]]] = {}
        for entries, side in ((txn.index_adds, 0), (txn.index_removes, 1)):
            for task, trigger, name in entries:
                changes.setdefault(self._bucket_key(uid, task, trigger, name), (set(), set()))[side].add(name)
                pair = f"{task}\x00{trigger}"
                if side == 0 and pair not in txn.state.setdefault("indexed", []):
                    txn.state["indexed"].append(pair)  # so delete_session finds every bucket
                    txn.state_dirty = True
        unread = [k for k in changes if k not in buckets]
        if unread:
            found = self.cache.get_many(unread)
            buckets.update({k: loads(found[k]) if k in found else [] for k in unread})
        out = {}
        for key, (adds, removes) in changes.items():
            buckets[key] = sorted((set(buckets[key]) | adds) - removes)
            out[key] = dumps(buckets[key])
        return out

    def _index(self, uid: str, *, add: bool) -> None:
        """The list of sessions (caches cannot enumerate keys); changed only
        when a session is created or deleted."""
        key = f"{self.prefix}:sessions"
        with self._locked("", "sessions-lock"):
            index = loads(self.cache.get(key) or "{}")
            if add:
                index[session_digest(uid)] = uid
            else:
                index.pop(session_digest(uid), None)
            self.cache.set(key, dumps(index), timeout=None)

    # -- inspection and lifecycle --------------------------------------------
    def instances(self, uid: str) -> dict[str, Instance]:
        check_uid(uid)
        state = parse_state(uid, self.cache.get(self._key(uid, "state")))
        if state is None:
            return {}
        keys = {self._instance_key(uid, n): n for n in instance_names(state)}
        found = self.cache.get_many(list(keys))
        return session_instances(uid, {keys[k]: v for k, v in found.items()})

    def sessions(self) -> list[str]:
        index = loads(self.cache.get(f"{self.prefix}:sessions") or "{}")
        states = self.cache.get_many([self._key(uid, "state") for uid in index.values()])
        alive = {self._key(uid, "state") for uid in index.values()} & set(states)
        return sorted(uid for uid in index.values() if self._key(uid, "state") in alive)

    def delete_session(self, uid: str) -> None:
        check_uid(uid)
        with self._locked(uid):
            state = parse_state(uid, self.cache.get(self._key(uid, "state")))
            if state is not None:
                keys = [self._instance_key(uid, n) for n in instance_names(state)]
                for pair in state.get("indexed", []):
                    task, _, trigger = pair.partition("\x00")
                    keys += [self._bucket_key(uid, task, trigger, b) for b in range(BUCKETS)]
                self.cache.delete_many(keys)
            self.cache.delete(self._key(uid, "state"))
        self._index(uid, add=False)


class CacheStorageBackend(SessionStorage):
    """The seed's form: ``TriggerManager(CacheStorageBackend(uid)).fire(name)``."""

    def __init__(self, uid: str, cache: str = "default", timeout: float | None = _DEFAULT_TIMEOUT):
        url = f"django-cache://{cache}?timeout={'none' if timeout is None else timeout}"
        super().__init__(DjangoCacheStorage(url), uid)
