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

The backend, its Redis path and its cache-API transactions are
:mod:`.backend`'s; the cache-API path's lock and lease :mod:`.lock`'s; where
a session's values live, the index of waiting instances and the list of
sessions :mod:`.index`'s.
"""

from __future__ import annotations

from .backend import CacheStorageBackend, DjangoCacheStorage

__all__ = ["CacheStorageBackend", "DjangoCacheStorage"]
