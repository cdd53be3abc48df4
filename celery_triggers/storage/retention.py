"""Retention rules: which sessions ``StorageBackend.purge`` deletes.

Backends without expiry (SQLite, memory, the Django database) keep a session
until it is purged; those with one (Redis, the Django cache) apply
:meth:`StorageBackend.expiry` at each commit and may be swept as well. The
sweep (``StorageBackend.purge``) runs over each backend's one primitive for
it, ``delete_if_idle`` (an atomic check-and-delete of one session), with
the rules here.
"""

from __future__ import annotations

import time
from typing import Any

from ..core.errors import CorruptSession
from ..core.state import Instance

__all__ = ["all_resolved", "purge_cutoff"]


def purge_cutoff(older_than: Any, now: float | None) -> float:
    """The time before which an idle session's last change makes it purgeable."""
    if not isinstance(older_than, (int, float)) or isinstance(older_than, bool) or older_than < 0:
        raise ValueError(f"older_than must be a number of seconds >= 0, got {older_than!r}")
    return (time.time() if now is None else now) - older_than


def all_resolved(found: dict[str, Instance] | CorruptSession) -> bool:
    """Every instance resolved (a corrupt session: not known to be)."""
    return isinstance(found, dict) and all(i.is_resolved for i in found.values())
