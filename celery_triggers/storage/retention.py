"""Retention: which sessions :meth:`StorageBackend.purge` deletes.

Backends without expiry (SQLite, memory, the Django database) keep a session
until it is purged; those with one (Redis, the Django cache) apply
:meth:`StorageBackend.expiry` at each commit and may be swept as well. The
sweep is here, over each backend's one primitive for it,
``delete_if_idle`` (an atomic check-and-delete of one session).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..core.errors import CorruptSession
from ..core.state import Instance

if TYPE_CHECKING:
    from .base import StorageBackend

__all__ = ["all_resolved", "purge", "purge_cutoff"]


def purge_cutoff(older_than: Any, now: float | None) -> float:
    """The time before which an idle session's last change makes it purgeable."""
    if not isinstance(older_than, (int, float)) or isinstance(older_than, bool) or older_than < 0:
        raise ValueError(f"older_than must be a number of seconds >= 0, got {older_than!r}")
    return (time.time() if now is None else now) - older_than


def all_resolved(found: dict[str, Instance] | CorruptSession) -> bool:
    """Every instance resolved (a corrupt session: not known to be)."""
    return isinstance(found, dict) and all(i.is_resolved for i in found.values())


def purge(
    backend: StorageBackend, older_than: float, *, now: float | None, resolved_only: bool, dry_run: bool
) -> list[str]:
    """:meth:`StorageBackend.purge` on ``backend`` (its docstring says what goes)."""
    cutoff = purge_cutoff(older_than, now)
    uids = backend.sessions()
    if resolved_only:  # read in batches; a change after this read is newer than cutoff: the session is kept
        found = backend.instances_many(uids)
        uids = [u for u in uids if all_resolved(found[u])]
    return [uid for uid in uids if backend.delete_if_idle(uid, cutoff, dry_run=dry_run)]
