"""Django cache storage (``django-cache://<alias>``), the original framework's
``CacheStorageBackend``.

Two ways, chosen by the cache behind the alias:

* **A Redis-backed cache** (Django's ``RedisCache``, django-redis's default
  client): the session lives on the cache's own Redis connection, in the
  layout of :mod:`celery_triggers.storage.redis`, its keys named by the
  cache's key function (``KEY_PREFIX``, ``VERSION``): a version compare-and-set in one Lua script per commit, no
  lock, no pickle, every key of a session expiring together.
* **Any other shared cache** (memcached, the database cache; or any cache
  with ``?lock=add``): the cache API under a per-session lock taken with
  ``cache.add``. The lock holds a random owner token and a lease of
  ``lock_timeout`` seconds: a holder checks, just before it writes, that
  the token is still its own and that less than 80% of the lease has gone;
  otherwise its commit is refused and the operation re-runs on fresh data.
  So a holder that stalled (a GC pause, a stopped VM) cannot write stale
  state over a newer holder's, provided a commit's writes take less than
  a fifth of ``lock_timeout``.

Refused, with an error naming the cache: file-based and dummy caches (their
``add`` is not atomic, or they store nothing), and a local-memory cache in a
Celery worker (it lives in one process).

Expiry (``?timeout=``, default 3600 s; ``none`` for none): a session with an
instance scheduled or running never expires; otherwise it expires that long
after its last change, all of its keys together (on the cache-API path the
other keys are kept alive at least as long as the state, and keys a newer
session with the same UID might find are never read by it).

URL options: ``?timeout=3600``, ``?lock_timeout=10``, ``?prefix=ct``,
``?lock=add`` (the cache-API path even on a Redis-backed cache).
"""

from __future__ import annotations

import functools
import random
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from ...core.data import dumps, loads
from ...core.errors import (
    ConfigurationError,
    Conflict,
    CorruptSession,
    InvalidStorageURL,
    StorageError,
    StorageUnavailable,
)
from ...core.state import Instance, split_instance_name
from ...storage import django_alias, mask_url
from ...storage.base import Job, StorageBackend
from ...storage.bound import SessionStorage
from ...storage.kv import KVTxn, instance_names, parse_state, session_digest, session_instances
from ...storage.txn import Prefetch, SessionTxn, check_uid
from .cache_parts import INSTEAD, REFUSED, Lease, float_or_none, redis_client

try:
    from django.core.cache import caches
    from django.core.cache.backends.base import BaseCache
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Django cache storage needs Django: pip install 'celery-triggers[django]'") from exc

__all__ = ["CacheStorageBackend", "DjangoCacheStorage"]

_DEFAULT_TIMEOUT = 3600.0
#: Buckets per (task, trigger) in the index of waiting instances.
BUCKETS = 32


F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


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


class DjangoCacheStorage(StorageBackend):
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
        try:
            if "timeout" in query:
                timeout = float_or_none(query["timeout"])
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
                from ...storage.redis import RedisStorage

                prefix = self.cache.make_key(self.prefix)  # the cache's KEY_PREFIX, VERSION and KEY_FUNCTION
                self._redis = RedisStorage.on_client(client, self.url, prefix, self.timeout)
        return self._redis

    def _key(self, uid: str, kind: str) -> str:
        return f"{self.prefix}:{session_digest(uid)}:{kind}"

    def _instance_key(self, uid: str, name: str) -> str:
        return self._key(uid, "i:" + session_digest(name))

    def _bucket_key(self, uid: str, task: str, trigger: str, name: str | int) -> str:
        """The index of waiting instances, in buckets: a fire reads every
        bucket of its (task, trigger) in one ``get_many``, and a commit
        rewrites only the buckets it changed, each ~1/``BUCKETS`` of it."""
        bucket = name if isinstance(name, int) else zlib.crc32(name.encode("utf-8", "surrogatepass")) % BUCKETS
        return self._key(uid, f"w:{session_digest(task + chr(0) + trigger)}:{bucket}")

    # -- locking ------------------------------------------------------------
    @contextmanager
    def _locked(self, uid: str, kind: str = "lock") -> Iterator[Lease]:
        cache = self.cache
        name = self._key(uid, kind)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.lock_timeout * 3
        ttl = max(1, int(self.lock_timeout + 0.999))
        try:
            while not cache.add(name, token, timeout=ttl):
                if time.monotonic() > deadline:  # a timeout: the session could not be reached in time
                    raise StorageUnavailable(
                        f"session {uid!r}: Django cache {self.alias!r} lock held by another process "
                        f"for more than {self.lock_timeout * 3:.0f}s"
                    )
                time.sleep(random.uniform(0.001, 0.01))  # noqa: S311 - jitter, not crypto
            lease = Lease(cache, name, token, self.lock_timeout)
            try:
                yield lease
            finally:
                if cache.get(name) == token:
                    cache.delete(name)
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
        ttl = self.expiry(bool(state.get("in_flight")))
        return (None, None) if ttl is None else (ttl, ttl * 2)

    def _session_keys(self, uid: str, state: dict[str, Any]) -> list[str]:
        keys = [self._instance_key(uid, n) for n in instance_names(state)]
        for pair in state.get("indexed", []):
            task, _, trigger = pair.partition("\x00")
            keys += [self._bucket_key(uid, task, trigger, b) for b in range(BUCKETS)]
        return keys

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
        return self._session_keys(uid, txn.state)

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
            state_key = self._key(uid, "state")
            wanted = {self._instance_key(uid, n): n for n in prefetch if isinstance(n, str)}
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
                keys = {self._instance_key(uid, n): n for n in names if n not in prefetched}
                if keys:
                    found.update({keys[k]: v for k, v in cache.get_many(list(keys)).items()})
                return found

            def fetch_waiting(pairs: list[tuple[str, str]]) -> dict[str, Any]:
                keys = [
                    self._bucket_key(uid, t, x, b) for t, x in pairs if f"{t}\x00{x}" in indexed for b in range(BUCKETS)
                ]
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
            values = {self._instance_key(uid, n): text for n, text in txn.instance_writes.items()}
            values.update(self._index_changes(uid, txn, buckets, indexed))
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

    def _index_changes(self, uid: str, txn: KVTxn, buckets: dict[str, list[str]], indexed: set[str]) -> dict[str, str]:
        """The index buckets a commit rewrites (reading those it has not;
        a (task, trigger) new to the session starts from empty buckets)."""
        changes: dict[str, tuple[set[str], set[str]]] = {}
        for entries, side in ((txn.index_adds, 0), (txn.index_removes, 1)):
            for task, trigger, name in entries:
                key = self._bucket_key(uid, task, trigger, name)
                changes.setdefault(key, (set(), set()))[side].add(name)
                pair = f"{task}\x00{trigger}"
                if pair not in indexed:
                    indexed.add(pair)
                    txn.state.setdefault("indexed", []).append(pair)  # so every bucket can be found
                    txn.state_dirty = True
                    buckets.update({self._bucket_key(uid, task, trigger, b): [] for b in range(BUCKETS)})
        unread = [k for k in changes if k not in buckets]
        if unread:
            found = self.cache.get_many(unread)
            buckets.update({k: loads(found[k]) if k in found else [] for k in unread})
        out = {}
        for key, (adds, removes) in changes.items():
            buckets[key] = sorted((set(buckets[key]) | adds) - removes)
            out[key] = dumps(buckets[key])
        return out

    # -- the list of sessions (cache-API path) ---------------------------------
    def _index_session(self, uid: str, *, remove: bool = False) -> None:
        """Caches cannot list keys, so the cache-API path keeps a list of
        sessions, changed only when a session is created or deleted. Entries
        of sessions whose state expired are pruned when the list has doubled
        since the last pruning, so it stays within twice the live sessions."""
        key = f"{self.prefix}:sessions"
        with self._locked("", "sessions-lock"):
            stored = loads(self.cache.get(key) or "{}")
            index: dict[str, str] = stored.get("sessions", {})
            pruned = int(stored.get("pruned", 0))
            if remove:
                index.pop(session_digest(uid), None)
            else:
                index[session_digest(uid)] = uid
            if len(index) > max(100, 2 * pruned):
                alive = self.cache.get_many([self._key(u, "state") for u in index.values()])
                index = {d: u for d, u in index.items() if self._key(u, "state") in alive}
                pruned = len(index)
            self.cache.set(key, dumps({"sessions": index, "pruned": pruned}), timeout=None)

    # -- start, inspection and lifecycle ---------------------------------------
    @_redis_first
    def start(
        self, uid: str, name: str, token: str, now: float, *, track: bool, metadata: Mapping[str, Any]
    ) -> tuple[Instance, Instance, dict[str, Any], Any]:
        return super().start(uid, name, token, now, track=track, metadata=metadata)

    @_redis_first
    def instances(self, uid: str) -> dict[str, Instance]:
        check_uid(uid)
        state = parse_state(uid, self.cache.get(self._key(uid, "state")))
        if state is None:
            return {}
        keys = {self._instance_key(uid, n): n for n in instance_names(state)}
        found = self.cache.get_many(list(keys))
        return session_instances(uid, {keys[k]: v for k, v in found.items()})

    @_redis_first
    def instances_many(self, uids: list[str]) -> dict[str, dict[str, Instance] | CorruptSession]:
        return super().instances_many(uids)

    @_redis_first
    def sessions(self) -> list[str]:
        index = loads(self.cache.get(f"{self.prefix}:sessions") or "{}").get("sessions", {})
        states = self.cache.get_many([self._key(uid, "state") for uid in index.values()])
        return sorted(uid for uid in index.values() if self._key(uid, "state") in states)

    @_redis_first
    def delete_session(self, uid: str) -> None:
        check_uid(uid)
        with self._locked(uid):
            state = parse_state(uid, self.cache.get(self._key(uid, "state")))
            self.cache.delete(self._key(uid, "state"))
            if state is not None:
                self.cache.delete_many(self._session_keys(uid, state))
        self._index_session(uid, remove=True)

    @_redis_first
    def delete_if_idle(self, uid: str, cutoff: float, *, dry_run: bool = False) -> bool:
        with self._locked(uid):
            try:
                state = parse_state(uid, self.cache.get(self._key(uid, "state")))
            except CorruptSession:
                return False
            if state is None or state.get("in_flight") or float(state.get("updated_at") or 0) >= cutoff:
                return False
            if dry_run:
                return True
            self.cache.delete(self._key(uid, "state"))
            self.cache.delete_many(self._session_keys(uid, state))
        self._index_session(uid, remove=True)
        return True

    @_redis_first
    def ping(self) -> None:
        self.cache.get(self._key("celery-triggers:ping", "state"))

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
