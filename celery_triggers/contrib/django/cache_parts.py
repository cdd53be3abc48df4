"""Parts of the Django cache storage (:mod:`.django_cache`) that do not
need Django: which caches are refused, the Redis client behind a
Redis-backed cache, and the cache-API lock's lease."""

from __future__ import annotations

import time
from typing import Any, Protocol

from ...core.errors import Conflict

__all__ = ["INSTEAD", "LEASE_SHARE", "REFUSED", "Lease", "float_or_none", "redis_client"]


class _Cache(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


#: Share of the lock's lease after which a holder may no longer commit.
LEASE_SHARE = 0.8
#: Caches whose ``add`` is not atomic, or that keep nothing.
REFUSED = {
    "django.core.cache.backends.filebased.FileBasedCache": "its add() is not atomic across processes",
    "django.core.cache.backends.dummy.DummyCache": "it stores nothing",
}
INSTEAD = "use a Redis-backed cache (django.core.cache.backends.redis.RedisCache, django-redis) or memcached"


def float_or_none(value: Any) -> float | None:
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


class Lease:
    """A held lock: its owner token and when it was taken."""

    def __init__(self, cache: _Cache, key: str, token: str, timeout: float):
        self.cache, self.key, self.token = cache, key, token
        self.deadline = time.monotonic() + timeout * LEASE_SHARE

    def check(self, uid: str) -> None:
        """Raise :class:`Conflict` (the operation re-runs) if this holder
        may no longer write."""
        if time.monotonic() > self.deadline or self.cache.get(self.key) != self.token:
            raise Conflict(f"session {uid!r}: the lock's lease ran out before the commit")
