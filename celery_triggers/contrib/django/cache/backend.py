"""The Django cache storage (see :mod:`celery_triggers.contrib.django.cache`):
its options, which caches it refuses, the Redis path (the Redis layout on a
Redis-backed cache's own connection, :attr:`DjangoCacheStorage.redis`), and
the cache-API path's transactions and session lifecycle, under the lock of
:mod:`.lock`, in the keys and index of :mod:`.index`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from ....core.data import loads
from ....core.errors import ConfigurationError, Conflict, CorruptSession, InvalidStorageURL, StorageError
from ....core.state import Instance, split_instance_name
from ....storage import django_alias, mask_url
from ....storage.base import Job, SessionStorage, StorageBackend
from ....storage.kv import KVTxn, instance_names, parse_state, session_instances
from ....storage.summaries import SessionSummary
from ....storage.txn import Prefetch, SessionTxn, check_uid
from .deadlines import CacheDeadlines
from .index import Layout, index_changes, list_sessions, update_session_list
from .lock import Lease, hold

try:
    from django.core.cache import caches
    from django.core.cache.backends.base import BaseCache
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Django cache storage needs Django: pip install 'celery-triggers[django]'") from exc

__all__ = ["INSTEAD", "REFUSED", "CacheStorageBackend", "DjangoCacheStorage", "redis_client"]

_DEFAULT_TIMEOUT = 3600.0
#: Caches whose ``add`` is not atomic, or that keep nothing.
REFUSED = {
    "django.core.cache.backends.filebased.FileBasedCache": "its add() is not atomic across processes",
    "django.core.cache.backends.dummy.DummyCache": "it stores nothing",
}
INSTEAD = "use a Redis-backed cache (django.core.cache.backends.redis.RedisCache, django-redis) or memcached"

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


def _float_or_none(value: Any) -> float | None:
    if value is None or str(value).lower() == "none":
        return None
    return float(value)


def redis_client(cache: Any) -> Any:
    """The Redis client a Redis-backed cache writes with, or None."""
    kind = f"{type(cache).__module__}.{type(cache).__qualname__}"
    if kind == "django.core.cache.backends.redis.RedisCache":
        return cache._cache.get_client(None, write=True)
    client = getattr(cache, "client", None)
    if type(client).__module__ == "django_redis.client.default" and type(client).__name__ == "DefaultClient":
        return client.get_client(write=True)  # type: ignore[union-attr]  # django-redis is untyped
    return None


def _redis_first(method: F) -> F:
    """On a Redis-backed cache, the same method of the Redis layout on the
    cache's connection (see :attr:`DjangoCacheStorage.redis`) answers."""

    @functools.wraps(method)
    def wrapper(self: DjangoCacheStorage, *args: Any, **kwargs: Any) -> Any:
        redis_backend = self.redis
        if redis_backend is not None:
            return getattr(redis_backend, method.__name__)(*args, **kwargs)
        return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]  # same signature as method


class DjangoCacheStorage(CacheDeadlines, StorageBackend):
    """Sessions in a Django cache (``CACHES[alias]``)."""

    #: Sockets refused, reset or timed out (``ConnectionError`` and
    #: ``TimeoutError`` are OSErrors), and a lock still held when the wait
    #: for it timed out; on a Redis-backed cache, the Redis layout's.
    connection_errors = (OSError,)
    #: The cache clients' own connection errors, by name (optional libraries):
    #: redis-py (``?lock=add`` on Django's RedisCache), django-redis, pymemcache.
    _CLIENT_CONNECTION_ERRORS = frozenset(
        {
            "redis.exceptions.ConnectionError",
            "redis.exceptions.TimeoutError",
            "redis.exceptions.BusyLoadingError",
            "redis.exceptions.MaxConnectionsError",
            "django_redis.exceptions.ConnectionInterrupted",
            "pymemcache.exceptions.MemcacheUnexpectedCloseError",
        }
    )

    def is_connection_error(self, exc: BaseException) -> bool:
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return kind in self._CLIENT_CONNECTION_ERRORS or super().is_connection_error(exc)

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
        self.alias = django_alias(url, "django-cache")
        self.prefix = query.get("prefix", "ct")
        #: Where the cache-API path keeps each session (:mod:`.index`).
        self.layout = Layout(self.prefix)
        try:
            if "timeout" in query:
                timeout = _float_or_none(query["timeout"])
            elif session_ttl:
                timeout = float(session_ttl)
            self.lock_timeout = float(query.get("lock_timeout", lock_timeout))
        except ValueError as exc:
            raise InvalidStorageURL(f"django-cache storage {mask_url(url)!r}: {exc}") from None
        self.timeout = self.session_ttl = timeout
        self.lock_kind = query.get("lock", "auto")
        if self.lock_kind not in ("auto", "add"):
            raise InvalidStorageURL(
                f"django-cache storage {mask_url(url)!r}: option lock must be 'auto' or 'add', got {self.lock_kind!r}"
            )
        self._redis: StorageBackend | None = None
        self._checked = False

    @property
    def cache(self) -> BaseCache:
        cache = caches[self.alias]
        if not self._checked:
            kind = f"{type(cache).__module__}.{type(cache).__qualname__}"
            if kind in REFUSED:
                raise ConfigurationError(
                    f"Django cache {self.alias!r} ({type(cache).__name__}) cannot hold trigger sessions: "
                    f"{REFUSED[kind]}; {INSTEAD}"
                )
            self._checked = True
        return cache

    def process_local_reason(self) -> str | None:
        kind = f"{type(self.cache).__module__}.{type(self.cache).__qualname__}"
        if kind == "django.core.cache.backends.locmem.LocMemCache":
            return f"Django cache {self.alias!r} is a LocMemCache, which lives in one process; {INSTEAD}"
        return None

    @property
    def redis(self) -> StorageBackend | None:
        """The Redis layout on the cache's own connection, when the cache is
        Redis-backed (and ``lock=add`` is not asked for)."""
        if self._redis is None and self.lock_kind == "auto":
            client = redis_client(self.cache)
            if client is not None:
                from ....storage.redis import RedisStorage

                prefix = self.cache.make_key(self.prefix)  # the cache's KEY_PREFIX, VERSION and KEY_FUNCTION
                self._redis = RedisStorage.on_client(client, self.url, prefix, self.timeout)
        return self._redis

    # -- locking ------------------------------------------------------------
    @contextmanager
    def _locked(self, uid: str, kind: str = "lock") -> Iterator[Lease]:
        """Hold the lock ``kind`` of session ``uid``; what the cache client
        raises meanwhile (under the lock) is a :class:`StorageError`."""
        try:
            with hold(self.cache, self.layout.key(uid, kind), self.lock_timeout, uid=uid, alias=self.alias) as lease:
                yield lease
        except (StorageError, Conflict):
            raise
        except Exception as exc:
            if type(exc).__module__.startswith(("redis", "django", "pymemcache", "pylibmc")) or isinstance(
                exc, (OSError, ConnectionError)
            ):
                raise self.storage_error(exc, f"session {uid!r}: Django cache {self.alias!r} failed: {exc!r}") from exc
            raise

    # -- expiry ---------------------------------------------------------------
    def _timeouts(self, state: dict[str, Any]) -> tuple[float | None, float | None]:
        """(state, other keys) timeouts: none while an instance is in flight;
        else the other keys live twice as long as the state, refreshed by
        :meth:`_refresh` so that they never expire before it."""
        ttl = self.expiry(bool(state.get("in_flight")), str(state.get("uid") or ""))
        return (None, None) if ttl is None else (ttl, ttl * 2)

    def _refresh(self, uid: str, txn: KVTxn, was_in_flight: bool) -> list[str]:
        """Keys to re-touch in this commit: all of them when the session
        starts or stops having work in flight, or half a timeout after the
        last refresh; else none."""
        if self.timeout is None:
            return []
        now = time.time()
        flipped = was_in_flight != bool(txn.state.get("in_flight"))
        if not flipped and now - float(txn.state.get("refreshed_at") or 0) < self.timeout / 2:
            return []
        txn.state["refreshed_at"] = now
        txn.state_dirty = True
        return self.layout.session_keys(uid, txn.state)

    # -- transactions -------------------------------------------------------
    @_redis_first
    def run(
        self, uid: str, operation: Callable[[SessionTxn], R], prefetch: Prefetch = (), cached: Any = None
    ) -> tuple[R, Any]:
        return super().run(uid, operation, prefetch, cached)

    @_redis_first
    def read(self, uid: str, operation: Callable[[SessionTxn], R], prefetch: Prefetch = ()) -> R:
        return super().read(uid, operation, prefetch)

    @_redis_first
    def run_many(self, jobs: Sequence[Job]) -> list[Any]:
        return super().run_many(jobs)

    def read_transaction(self, uid: str, prefetch: Prefetch = ()) -> AbstractContextManager[SessionTxn]:
        """Reads take no lock (on the cache-API path, a read that races a
        commit may see part of it: for inspection only)."""
        return self._transaction(uid, prefetch, lock=False)

    def transaction(
        self, uid: str, prefetch: Prefetch = (), cached: object = None
    ) -> AbstractContextManager[SessionTxn]:
        return self._transaction(uid, prefetch)

    @contextmanager
    def _transaction(self, uid: str, prefetch: Prefetch = (), *, lock: bool = True) -> Iterator[SessionTxn]:
        """The cache-API path: under the session's lock (``lock``: false for a read)."""
        with self._locked(uid) if lock else nullcontext(None) as lease:
            cache = self.cache
            state_key = self.layout.key(uid, "state")
            wanted = {self.layout.instance(uid, n): n for n in prefetch if isinstance(n, str)}
            first = cache.get_many([state_key, *wanted])  # the state and the instances in one call
            state = parse_state(uid, first.get(state_key))
            numbers = _next_numbers(state)
            prefetched = {wanted[k]: v for k, v in first.items() if k in wanted}
            buckets: dict[str, list[str]] = {}
            indexed = set(state.get("indexed", [])) if state is not None else set()

            def ours(name: str) -> bool:
                """A record this session wrote (not one left by an expired
                session with the same UID)."""
                task, number = split_instance_name(name)
                return number < numbers.get(task, 0)

            def fetch(names: list[str]) -> dict[str, Any]:
                names = [n for n in names if ours(n)]
                found = {n: prefetched[n] for n in names if n in prefetched}
                keys = {self.layout.instance(uid, n): n for n in names if n not in prefetched}
                if keys:
                    found.update({keys[k]: v for k, v in cache.get_many(list(keys)).items()})
                return found

            def fetch_waiting(pairs: list[tuple[str, str]]) -> dict[str, Any]:
                keys = [k for t, x in pairs if f"{t}\x00{x}" in indexed for k in self.layout.buckets(uid, t, x)]
                texts = cache.get_many([k for k in keys if k not in buckets])
                for key in keys:
                    if key not in buckets:
                        buckets[key] = loads(texts[key]) if key in texts else []
                names = sorted({n for key in keys for n in buckets[key]})
                return fetch(names) if names else {}

            txn = KVTxn(uid, state, fetch, fetch_waiting)
            was_in_flight = bool(txn.state.get("in_flight"))
            yield txn
            if not txn.changed:
                return
            values = {self.layout.instance(uid, n): text for n, text in txn.instance_writes.items()}
            values.update(index_changes(cache, self.layout, uid, txn, buckets, indexed))
            touch = self._refresh(uid, txn, was_in_flight)
            state_timeout, other_timeout = self._timeouts(txn.state)
            if lease is None:
                raise RuntimeError(f"session {uid!r}: a read-only transaction cannot write")
            lease.check(uid)
            # The state last: it is what makes the other writes part of the session.
            failed = list(cache.set_many(values, timeout=other_timeout) or [])
            if failed:
                raise StorageError(
                    f"session {uid!r}: Django cache {self.alias!r} did not store {len(failed)} key(s); "
                    "the session's state was not written"
                )
            for key in set(touch) - set(values):
                cache.touch(key, timeout=other_timeout)
            cache.set(state_key, txn.state_text(), timeout=state_timeout)
        if txn.is_new:
            self._index_session(uid)

    def _index_session(self, uid: str, *, remove: bool = False) -> None:
        """Caches cannot list keys: the cache-API path keeps a list of
        sessions (see :func:`.index.update_session_list`), under its lock."""
        with self._locked("", "sessions-lock"):
            update_session_list(self.cache, self.layout, uid, remove=remove)

    # -- start, inspection and lifecycle ---------------------------------------
    @_redis_first
    def start(
        self, uid: str, name: str, token: str, now: float, *, track: bool, metadata: Mapping[str, Any]
    ) -> tuple[Instance, Instance, dict[str, Any], Any]:
        return super().start(uid, name, token, now, track=track, metadata=metadata)

    @_redis_first
    def instances(self, uid: str) -> dict[str, Instance]:
        check_uid(uid)
        state = parse_state(uid, self.cache.get(self.layout.key(uid, "state")))
        if state is None:
            return {}
        keys = {self.layout.instance(uid, n): n for n in instance_names(state)}
        found = self.cache.get_many(list(keys))
        return session_instances(uid, {keys[k]: v for k, v in found.items()}, state)

    @_redis_first
    def instances_many(self, uids: list[str]) -> dict[str, dict[str, Instance] | CorruptSession]:
        return super().instances_many(uids)

    @_redis_first
    def sessions(self) -> list[str]:
        return list_sessions(self.cache, self.layout)

    @_redis_first
    def iter_sessions(self, batch: int = 500) -> Iterator[list[str]]:
        return super().iter_sessions(batch)

    @_redis_first
    def session_exists(self, uid: str) -> bool:
        return self.cache.get(self.layout.key(check_uid(uid), "state")) is not None

    @_redis_first
    def iter_instances(self, uid: str, batch: int = 1000) -> Iterator[list[Instance]]:
        """One ``get_many`` per batch, of the names the session's state lists."""
        from .listing import iter_instances

        return iter_instances(self, uid, batch)

    @_redis_first
    def count_instances(self, uid: str) -> int:
        return super().count_instances(uid)

    @_redis_first
    def summaries(self, uids: Sequence[str], *, activity: bool = True) -> dict[str, SessionSummary | CorruptSession]:
        """The summaries the states keep, else tallied from the records."""
        from .listing import summaries

        return summaries(self, uids)

    @_redis_first
    def delete_session(self, uid: str) -> None:
        check_uid(uid)
        with self._locked(uid):
            state = parse_state(uid, self.cache.get(self.layout.key(uid, "state")))
            self.cache.delete(self.layout.key(uid, "state"))
            if state is not None:
                self.cache.delete_many(self.layout.session_keys(uid, state))
        self._index_session(uid, remove=True)

    @_redis_first
    def delete_if_idle(self, uid: str, cutoff: float, *, dry_run: bool = False) -> bool:
        with self._locked(uid):
            try:
                state = parse_state(uid, self.cache.get(self.layout.key(uid, "state")))
            except CorruptSession:
                return False
            if state is None or state.get("in_flight") or float(state.get("updated_at") or 0) >= cutoff:
                return False
            if dry_run:
                return True
            self.cache.delete(self.layout.key(uid, "state"))
            self.cache.delete_many(self.layout.session_keys(uid, state))
        self._index_session(uid, remove=True)
        return True

    @_redis_first
    def ping(self) -> None:
        self.cache.get(self.layout.key("celery-triggers:ping", "state"))

    def close(self) -> None:
        self._redis = None  # the connection is the cache's own: Django closes it


def _next_numbers(state: dict[str, Any] | None) -> dict[str, int]:
    if state is None:
        return {}
    return {task: int(record.get("next_number", 0)) for task, record in state["tasks"].items()}


class CacheStorageBackend(SessionStorage):
    """The seed's form: ``TriggerManager(CacheStorageBackend(uid)).fire(name)``."""

    def __init__(self, uid: str, cache: str = "default", timeout: float | None = _DEFAULT_TIMEOUT):
        url = f"django-cache://{cache}?timeout={'none' if timeout is None else timeout}"
        super().__init__(DjangoCacheStorage(url), uid)
