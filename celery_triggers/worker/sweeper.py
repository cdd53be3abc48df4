"""The recovery sweeper: a bootstep, on by default, that runs
:func:`~.recovery.recover` every ``triggers_recover_interval`` seconds (60;
0 turns it off) on one worker at a time, as Celery Beat runs as its own
bootstep. One worker at a time: a lock record in storage with an expiry of
two intervals, taken or renewed atomically (on every backend), so a worker
that died hands the sweep over within two intervals.

After each sweep it sends the :data:`swept` signal with the number of
instances by status it read (the observers' gauges sample storage there,
at no extra read)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from celery import bootsteps
from celery.utils.dispatch import Signal

from ..core.needs import Needs
from ..core.state import INTERNAL_PREFIX, Changes, TriggerRecord
from ..session.extension import Extension, extension_of
from .forks import install as install_fork_gate
from .forks import storage_io
from .recovery import recover

__all__ = ["PeriodicStep", "PeriodicSweep", "Sweeper", "SweeperStep", "swept", "take_lock"]

logger = logging.getLogger("celery_triggers")

#: Sent in the worker's main process after each sweep this worker made.
#: Arguments: ``sender`` (the app's extension), ``census`` (status value ->
#: number of instances the sweep read in that status, over every session).
swept = Signal(name="swept")

#: The internal session holding the sweeper's lock.
LOCK_SESSION = INTERNAL_PREFIX + "recovery"


def take_lock(ext: Extension, holder: str, seconds: float, session: str = LOCK_SESSION) -> bool:
    """Take (or renew) the sweeper's lock (the lock record in internal
    session ``session``) for ``seconds``; False when another holder's is
    still valid."""
    now = time.time()

    def op(txn: Any) -> bool:
        record = txn.load(Needs(triggers=frozenset({"lease"}))).triggers.get("lease")
        if record is not None and record.kwargs.get("holder") != holder and record.kwargs.get("until", 0) > now:
            return False
        txn.write(Changes(triggers={"lease": TriggerRecord("lease", {"holder": holder, "until": now + seconds})}))
        return True

    return bool(ext.storage.atomic(session, op))


class PeriodicSweep:
    """A thread that calls :meth:`sweep` every ``interval`` seconds (a
    sweep takes the lock first: one worker at a time). A failed sweep is
    logged, and the next one comes an interval later."""

    #: The thread's name, and what the log calls the sweep.
    thread_name = "celery-triggers-sweep"
    what = "sweep"

    def __init__(self, ext: Extension, interval: float, holder: str):
        self.ext = ext
        self.interval = interval
        self.holder = holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sweep(self) -> Any:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception:  # an extension never breaks its host: logged, next sweep in an interval
                logger.exception("celery-triggers: %s failed; next in %s s", self.what, self.interval)


class Sweeper(PeriodicSweep):
    """The recovery sweep, every ``interval`` seconds while it holds the lock."""

    thread_name = "celery-triggers-recovery"
    what = "recovery sweep"

    def __init__(self, ext: Extension, interval: float, holder: str):
        super().__init__(ext, interval, holder)
        self.older_than: float = ext.setting("triggers_recover_older_than")

    def sweep(self) -> None:
        with storage_io():
            if not take_lock(self.ext, self.holder, self.interval * 2):
                return
        census: Counter[str] = Counter()
        for action in recover(self.ext, older_than=self.older_than, gate=storage_io, census=census):
            if action.action == "lost data":
                logger.error("celery-triggers: %s", action)
            elif action.action != "skipped":
                logger.warning("celery-triggers: recovered %s", action)
        swept.send(sender=self.ext, census=dict(census))


class PeriodicStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
    """Runs a :class:`PeriodicSweep` in this worker every ``setting``
    seconds (0 or unset: not at all)."""

    requires = ("celery_triggers.worker.lifecycle:LeaseStep",)
    #: The interval's setting, and the sweep it runs.
    setting = ""
    sweep_class: type[PeriodicSweep] = PeriodicSweep

    def __init__(self, parent: Any, **kwargs: Any):
        super().__init__(parent, **kwargs)
        self.sweeper: PeriodicSweep | None = None
        install_fork_gate()  # before the pool forks (see .forks)

    def start(self, parent: Any) -> None:
        ext = extension_of(parent.app)
        interval = ext.setting(self.setting) if ext is not None else None
        if ext is not None and interval:
            self.sweeper = self.sweep_class(ext, float(interval), parent.hostname)
            self.sweeper.start()

    def stop(self, parent: Any) -> None:
        if self.sweeper is not None:
            self.sweeper.stop()
            self.sweeper = None

    def terminate(self, parent: Any) -> None:
        """A cold shutdown (or Celery's test worker) stops it too."""
        self.stop(parent)


class SweeperStep(PeriodicStep):
    """Runs the recovery sweep in this worker (when it holds the lock)."""

    label = "celery-triggers sweeper"
    setting = "triggers_recover_interval"
    sweep_class = Sweeper
