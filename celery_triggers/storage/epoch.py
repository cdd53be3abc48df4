"""The storage's epoch: a marker written once, when a storage is first
used, that every message carries. A worker that receives a message for an
instance its storage does not hold compares the message's epoch with the
storage's: another epoch (or none left) means the storage lost data (a
Redis restarted without persistence, a flushed or restored database), which
is an error to say loudly, not a stale message to skip quietly. The losses
seen are recorded beside the epoch, for ``celery triggers recover
--dry-run`` to report.

Kept in an internal session (its UID starts with ``celery-triggers:``), as
records of the storage's own kind, so every backend holds it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..core.needs import Needs
from ..core.state import Changes, TriggerRecord
from .base import StorageBackend
from .txn import SessionTxn

__all__ = ["EPOCH_SESSION", "Epoch", "current_epoch", "losses", "record_loss"]

#: The internal session holding the epoch and the losses seen.
EPOCH_SESSION = "celery-triggers:storage"
_EPOCH, _LOSSES = "epoch", "losses"


@dataclass(frozen=True)
class Epoch:
    id: str
    created_at: float


def _read(txn: SessionTxn, name: str) -> dict[str, Any] | None:
    record = txn.load(Needs(triggers=frozenset({name}))).triggers.get(name)
    return dict(record.kwargs) if record is not None else None


def current_epoch(backend: StorageBackend, *, create: bool = True) -> Epoch | None:
    """The storage's epoch; created (once, atomically) when there is none
    and ``create`` is true."""

    def get(txn: SessionTxn) -> dict[str, Any] | None:
        found = _read(txn, _EPOCH)
        if found is None and create:
            found = {"id": uuid.uuid4().hex, "created_at": time.time()}
            txn.write(Changes(triggers={_EPOCH: TriggerRecord(_EPOCH, found, 1)}))
        return found

    found = backend.atomic(EPOCH_SESSION, get) if create else backend.read(EPOCH_SESSION, get)
    return None if found is None else Epoch(str(found["id"]), float(found["created_at"]))


def record_loss(backend: StorageBackend, message_epoch: str, current: Epoch, example: str) -> dict[str, Any]:
    """Count one message that named a session this storage lost (written
    before ``current``, in ``message_epoch``); returns what is recorded."""

    def add(txn: SessionTxn) -> dict[str, Any]:
        seen = _read(txn, _LOSSES) or {"first_seen": time.time(), "messages": 0, "epochs": []}
        seen["messages"] = int(seen.get("messages", 0)) + 1
        seen["last_seen"] = time.time()
        seen["example"] = example
        seen["current_epoch"] = current.id
        seen["epochs"] = sorted({*seen.get("epochs", []), message_epoch})
        txn.write(Changes(triggers={_LOSSES: TriggerRecord(_LOSSES, seen, 1)}))
        return seen

    result: dict[str, Any] = backend.atomic(EPOCH_SESSION, add)
    return result


def losses(backend: StorageBackend) -> dict[str, Any] | None:
    """The losses workers recorded (None: none seen)."""
    return backend.read(EPOCH_SESSION, lambda txn: _read(txn, _LOSSES))
