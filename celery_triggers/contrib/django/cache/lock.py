"""The cache-API path's per-session lock, and its lease.

The lock is a key taken with ``cache.add`` (atomic on the caches that are
not refused), holding a random owner token, with a TTL of ``lock_timeout``
seconds so that a holder that died leaves nothing behind for long. A holder
checks its :class:`Lease` just before it writes: the token still its own,
and less than :data:`LEASE_SHARE` of the lease gone; otherwise its commit
is refused (:class:`Conflict`) and the operation re-runs on fresh data.
Needs no Django: it talks to the cache through :class:`Cache`.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from ....core.errors import Conflict, StorageUnavailable

__all__ = ["LEASE_SHARE", "Cache", "Lease", "hold"]


class Cache(Protocol):
    """What the lock uses of a Django cache."""

    def add(self, key: str, value: Any, timeout: Any = ..., version: Any = None) -> bool: ...

    def get(self, key: str, default: Any = None) -> Any: ...

    def delete(self, key: str) -> Any: ...


#: Share of the lock's lease after which a holder may no longer commit.
LEASE_SHARE = 0.8


class Lease:
    """A held lock: its owner token and when it was taken."""

    def __init__(self, cache: Cache, key: str, token: str, timeout: float):
        self.cache, self.key, self.token = cache, key, token
        self.deadline = time.monotonic() + timeout * LEASE_SHARE

    def check(self, uid: str) -> None:
        """Raise :class:`Conflict` (the operation re-runs) if this holder
        may no longer write."""
        if time.monotonic() > self.deadline or self.cache.get(self.key) != self.token:
            raise Conflict(f"session {uid!r}: the lock's lease ran out before the commit")


@contextmanager
def hold(cache: Cache, key: str, lock_timeout: float, *, uid: str, alias: str) -> Iterator[Lease]:
    """Take the lock ``key`` of session ``uid`` (waiting, with jitter, up to
    three lock timeouts: then :class:`StorageUnavailable`), and release it
    on the way out if it is still this holder's."""
    token = uuid.uuid4().hex
    deadline = time.monotonic() + lock_timeout * 3
    ttl = max(1, int(lock_timeout + 0.999))
    while not cache.add(key, token, timeout=ttl):
        if time.monotonic() > deadline:  # a timeout: the session could not be reached in time
            raise StorageUnavailable(
                f"session {uid!r}: Django cache {alias!r} lock held by another process "
                f"for more than {lock_timeout * 3:.0f}s"
            )
        time.sleep(random.uniform(0.001, 0.01))  # noqa: S311 - jitter, not crypto
    lease = Lease(cache, key, token, lock_timeout)
    try:
        yield lease
    finally:
        if cache.get(key) == token:
            cache.delete(key)
