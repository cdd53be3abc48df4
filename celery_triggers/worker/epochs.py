"""A storage that lost data says so (see :mod:`celery_triggers.storage.epoch`):
a message for an instance its storage does not hold, sent when the storage
held another epoch, is logged at ERROR with what to do, and counted where
``celery triggers recover --dry-run`` reports it; the lease keeper checks
the epoch it started with at every heartbeat, too."""

from __future__ import annotations

import logging

from ..core.data import shown
from ..core.errors import TriggersError
from ..storage import StorageBackend, mask_url
from ..storage.epoch import Epoch, current_epoch, record_loss
from .headers import MessageIds

__all__ = ["LOST", "check_epoch", "lost_storage"]

logger = logging.getLogger("celery_triggers")

#: What to do, said in every error line about a storage that lost data.
LOST = (
    "the storage was emptied or restored (a Redis without persistence restarted, a flushed or restored "
    "database?): sessions written before are gone. Restore it from a backup, or fire those sessions' "
    "triggers again; `celery triggers recover --dry-run` reports what workers saw"
)


def lost_storage(backend: StorageBackend, what: str) -> None:
    logger.error("celery-triggers: storage %s lost data: %s; %s", mask_url(backend.url), what, LOST)


def check_epoch(backend: StorageBackend, ids: MessageIds, token: str) -> bool:
    """Whether a message for an instance ``backend`` does not hold was sent
    when it held another epoch (then said at ERROR, and recorded)."""
    try:
        current = current_epoch(backend)  # none left: a new one begins here (the old one is gone)
    except TriggersError:
        return False  # storage unreachable: the stale-message warning says enough
    if current is None or current.id == ids.epoch:
        return False
    example = f"{ids.name} of session {shown(ids.uid)}"
    lost_storage(
        backend,
        f"message {token} for {example} was sent when it held epoch {ids.epoch}, it now holds {current.id} "
        f"(created {_when(current)})",
    )
    try:
        record_loss(backend, str(ids.epoch), current, example)
    except TriggersError:
        pass  # said in the log already
    return True


def _when(epoch: Epoch) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch.created_at))
