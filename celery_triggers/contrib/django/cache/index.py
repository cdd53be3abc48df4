"""Where the cache-API path keeps a session, the index of its waiting
instances, and the list of sessions.

A session is the three values of :mod:`celery_triggers.storage.kv` (state,
one record per instance, an index of the unstarted instances by each
trigger they await) under keys :class:`Layout` names. The index is kept in
:data:`BUCKETS` buckets per (task, trigger): a fire reads every bucket of
its pair in one ``get_many``, and a commit rewrites only the buckets it
changed (:func:`index_changes`). Caches cannot list keys, so the sessions
are listed in one more value (:func:`update_session_list`,
:func:`list_sessions`).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from ....core.data import dumps, loads
from ....storage.kv import KVTxn, instance_names, session_digest

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache

__all__ = ["BUCKETS", "Layout", "index_changes", "list_sessions", "update_session_list"]

#: Buckets per (task, trigger) in the index of waiting instances.
BUCKETS = 32


class Layout:
    """The keys of the sessions of one storage (``prefix``): a session's
    are named by its UID's digest, so any UID makes a valid cache key."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        #: The list of sessions.
        self.sessions = f"{prefix}:sessions"

    def key(self, uid: str, kind: str) -> str:
        """A value of session ``uid``: ``state``, its ``lock``, ..."""
        return f"{self.prefix}:{session_digest(uid)}:{kind}"

    def instance(self, uid: str, name: str) -> str:
        """The record of instance ``name``."""
        return self.key(uid, "i:" + session_digest(name))

    def bucket(self, uid: str, task: str, trigger: str, name: str | int) -> str:
        """The bucket of the index of waiting instances that holds ``name``
        (or bucket number ``name``) for (``task``, ``trigger``)."""
        bucket = name if isinstance(name, int) else zlib.crc32(name.encode("utf-8", "surrogatepass")) % BUCKETS
        return self.key(uid, f"w:{session_digest(task + chr(0) + trigger)}:{bucket}")

    def buckets(self, uid: str, task: str, trigger: str) -> list[str]:
        """Every bucket of (``task``, ``trigger``)."""
        return [self.bucket(uid, task, trigger, b) for b in range(BUCKETS)]

    def session_keys(self, uid: str, state: dict[str, Any]) -> list[str]:
        """Every key of the session but its state (and its lock)."""
        keys = [self.instance(uid, n) for n in instance_names(state)]
        for pair in state.get("indexed", []):
            task, _, trigger = pair.partition("\x00")
            keys += self.buckets(uid, task, trigger)
        return keys


def index_changes(
    cache: BaseCache, layout: Layout, uid: str, txn: KVTxn, buckets: dict[str, list[str]], indexed: set[str]
) -> dict[str, str]:
    """The index buckets a commit rewrites (reading those it has not;
    a (task, trigger) new to the session starts from empty buckets).
    ``buckets`` holds those read so far, ``indexed`` the session's pairs."""
    changes: dict[str, tuple[set[str], set[str]]] = {}
    for entries, side in ((txn.index_adds, 0), (txn.index_removes, 1)):
        for task, trigger, name in entries:
            key = layout.bucket(uid, task, trigger, name)
            changes.setdefault(key, (set(), set()))[side].add(name)
            pair = f"{task}\x00{trigger}"
            if pair not in indexed:
                indexed.add(pair)
                txn.state.setdefault("indexed", []).append(pair)  # so every bucket can be found
                txn.state_dirty = True
                buckets.update({k: [] for k in layout.buckets(uid, task, trigger)})
    unread = [k for k in changes if k not in buckets]
    if unread:
        found = cache.get_many(unread)
        buckets.update({k: loads(found[k]) if k in found else [] for k in unread})
    out = {}
    for key, (adds, removes) in changes.items():
        buckets[key] = sorted((set(buckets[key]) | adds) - removes)
        out[key] = dumps(buckets[key])
    return out


def update_session_list(cache: BaseCache, layout: Layout, uid: str, *, remove: bool = False) -> None:
    """Add ``uid`` to the list of sessions (``remove``: take it out); the
    caller holds the list's lock. The list changes only when a session is
    created or deleted. Entries of sessions whose state expired are pruned
    when the list has doubled since the last pruning, so it stays within
    twice the live sessions."""
    stored = loads(cache.get(layout.sessions) or "{}")
    index: dict[str, str] = stored.get("sessions", {})
    pruned = int(stored.get("pruned", 0))
    if remove:
        index.pop(session_digest(uid), None)
    else:
        index[session_digest(uid)] = uid
    if len(index) > max(100, 2 * pruned):
        alive = cache.get_many([layout.key(u, "state") for u in index.values()])
        index = {d: u for d, u in index.items() if layout.key(u, "state") in alive}
        pruned = len(index)
    cache.set(layout.sessions, dumps({"sessions": index, "pruned": pruned}), timeout=None)


def list_sessions(cache: BaseCache, layout: Layout) -> list[str]:
    """UIDs of the listed sessions whose state is still there."""
    index = loads(cache.get(layout.sessions) or "{}").get("sessions", {})
    states = cache.get_many([layout.key(uid, "state") for uid in index.values()])
    return sorted(uid for uid in index.values() if layout.key(uid, "state") in states)
