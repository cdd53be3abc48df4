"""The worker's main process keeps its instances' leases.

For every trigger message the worker receives it remembers which instance
the message is for (Celery's ``task_received``, in the main process), so
that what Celery decides there about a message (:mod:`.lifecycle`: a time
limit, a revoke, a lost pool process) resolves the instance at once. And
every ``triggers_heartbeat_interval`` seconds it writes one heartbeat per
storage, listing the instances its pool is running (Celery's active
requests): the lease the sweeper (:mod:`.sweeper`) checks before it
presumes an instance lost. One thread per worker, one write per interval,
whatever the number of tasks.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from ..core.errors import IllegalTransition, StaleDispatch, StorageUnavailable, TriggersError, UnknownInstance
from ..core.leases import HEARTBEATS, Heartbeat
from ..core.needs import Needs
from ..core.operations import Operation
from ..core.state import Changes, TriggerRecord
from ..session.extension import Extension
from ..storage import StorageBackend
from ..storage.epoch import current_epoch
from .epochs import lost_storage
from .forks import storage_io
from .headers import MessageIds

__all__ = ["KEEPERS", "Keeper", "keeper_of", "read_heartbeats", "write_heartbeat"]

logger = logging.getLogger("celery_triggers")

#: id(app) -> the keeper of this worker process's leases for that app (set
#: by the bootstep, :class:`celery_triggers.worker.lifecycle.LeaseStep`).
KEEPERS: dict[int, Keeper] = {}


def keeper_of(app: Any) -> Keeper | None:
    """The keeper of ``app``'s leases in this worker (set before the pool
    forks, so its processes know leases are kept), or None."""
    return KEEPERS.get(id(app))


def read_heartbeats(backend: StorageBackend) -> dict[str, Heartbeat]:
    """The last heartbeat of every worker that wrote one to ``backend``."""
    snapshot = backend.read(HEARTBEATS, lambda txn: txn.load(Needs(all_triggers=True)))
    return {name: Heartbeat.from_kwargs(name, record.kwargs) for name, record in snapshot.triggers.items()}


def write_heartbeat(backend: StorageBackend, beat: Heartbeat) -> None:
    def write(txn: Any) -> None:
        txn.write(Changes(triggers={beat.worker: TriggerRecord(beat.worker, beat.to_kwargs(), 1)}))

    backend.atomic(HEARTBEATS, write)


class Keeper:
    """One worker's leases and lifecycle resolutions, in one thread."""

    def __init__(self, ext: Extension, hostname: str, interval: float):
        self.ext = ext
        self.hostname = hostname
        self.interval = interval
        self.pid = os.getpid()
        #: task id -> what its message is for (trigger messages this worker received).
        self._received: dict[str, MessageIds] = {}
        self._unseen: set[str] = set()
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[tuple[MessageIds, Operation, str] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="celery-triggers-leases", daemon=True)
        self._written: dict[str | None, frozenset[tuple[str, str, str]]] = {}
        self._last_beat = 0.0
        #: The epoch of the app's storage this worker knows (see .epochs).
        self._epoch: str | None = None

    # -- in Celery's handlers (main process) ------------------------------------
    def received(self, task_id: str, ids: MessageIds) -> None:
        with self._lock:
            self._received[task_id] = ids

    def message(self, task_id: str) -> MessageIds | None:
        with self._lock:
            return self._received.get(task_id)

    def resolve(self, ids: MessageIds, operation: Operation, why: str) -> None:
        """Apply ``operation`` to the instance ``ids`` names, in the keeper's
        thread (a signal handler must not wait on storage); ``why`` goes in
        the log line."""
        self._work.put((ids, operation, why))

    # -- the thread -------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._work.put(None)
        self._thread.join(timeout=10)
        with storage_io():
            self._beat(time.time(), final=True)

    def _loop(self) -> None:
        pending: list[tuple[MessageIds, Operation, str]] = []
        while not self._stop.is_set():
            timeout = max(0.0, self._last_beat + self.interval - time.time())
            try:
                item = self._work.get(timeout=timeout if not pending else min(timeout, 1.0))
                if item is not None:
                    pending.append(item)
            except queue.Empty:
                pass
            pending = [item for item in pending if not self._gated_apply(*item)]
            if time.time() - self._last_beat >= self.interval:
                self._last_beat = time.time()  # the next in an interval, whatever this one does
                try:
                    with storage_io():
                        self._watch_epoch()
                        self._beat(self._last_beat)
                except Exception:  # an extension never breaks its host: logged, tried again next interval
                    logger.exception(
                        "celery-triggers: heartbeat of %s failed; next in %.0f s", self.hostname, self.interval
                    )

    def _gated_apply(self, ids: MessageIds, operation: Operation, why: str) -> bool:
        with storage_io():
            return self._apply(ids, operation, why)

    def _apply(self, ids: MessageIds, operation: Operation, why: str) -> bool:
        """Whether ``operation`` is done with (applied, or moot); False to
        try again (storage unreachable)."""
        try:
            changes = self.ext.session(ids.uid, ids.alias).apply(operation)
        except StorageUnavailable as exc:
            logger.warning(
                "celery-triggers: storage unreachable resolving %s of session %r (%s); retrying", ids.name, ids.uid, exc
            )
            return False
        except (IllegalTransition, StaleDispatch, UnknownInstance) as exc:
            logger.info("celery-triggers: %s of session %r: nothing to resolve (%s)", ids.name, ids.uid, exc)
            return True
        except TriggersError as exc:
            logger.error("celery-triggers: could not resolve %s of session %r (%s): %s", ids.name, ids.uid, why, exc)
            return True
        instance = changes.instances.get(ids.name)
        status = instance.status.value if instance is not None else "unchanged"
        logger.warning("celery-triggers: %s of session %r is %s: %s", ids.name, ids.uid, status, why)
        return True

    def _watch_epoch(self) -> None:
        """The app's storage still holds the epoch this worker first saw
        (else it lost data: said once, at ERROR, then the new one is known)."""
        backend = self.ext.storage
        found = current_epoch(backend, create=self._epoch is None)
        if self._epoch is not None and (found is None or found.id != self._epoch):
            now = f"it now holds {found.id}" if found is not None else "it holds none"
            lost_storage(backend, f"its epoch {self._epoch}, seen when this worker started, is gone ({now})")
            found = current_epoch(backend)
        self._epoch = found.id if found is not None else None

    def running(self) -> list[tuple[MessageIds, str]]:
        """The trigger messages this worker's pool is running now, and the
        pruning of those it no longer holds."""
        from celery.worker import state

        active = {request.id for request in list(state.active_requests)}
        held = active | {request.id for request in list(state.reserved_requests)}
        with self._lock:
            gone = {task_id for task_id in self._received if task_id not in held}
            for task_id in gone & self._unseen:  # gone two heartbeats in a row: forgotten
                del self._received[task_id]
            self._unseen = gone - (gone & self._unseen)
            return [(ids, task_id) for task_id, ids in self._received.items() if task_id in active]

    def _beat(self, now: float, *, final: bool = False) -> None:
        """One heartbeat per storage that holds an instance running here (or
        did at the last heartbeat)."""
        by_alias: dict[str | None, set[tuple[str, str, str]]] = {}
        for ids, token in [] if final else self.running():
            by_alias.setdefault(ids.alias, set()).add((ids.uid, ids.name, token))
        for alias in set(by_alias) | {a for a, rows in self._written.items() if rows}:
            rows = frozenset(by_alias.get(alias, ()))
            try:
                backend = self.ext.storage_for(alias)
            except TriggersError as exc:
                logger.error("celery-triggers: no heartbeat to storage %r: %s", alias, exc)
                continue
            write_heartbeat(backend, Heartbeat(self.hostname, now, self.interval, rows))
            self._written[alias] = rows
