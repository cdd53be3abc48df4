"""The deadline sweep: instances whose ``within`` deadline passed are
abandoned and their ``on_timeout`` fires, without any further activity in
their session.

Storage indexes due times (``StorageBackend.due_deadlines``: a sorted set,
an indexed table, time buckets); :func:`sweep_deadlines` reads the due
entries and runs each through the engine (``TriggerManager.expire_instance``,
one optimistic commit), which decides: abandon, leave alone (the instance
became ready), or put back (not due yet). The :class:`DeadlineStep` runs it
every ``triggers_deadline_interval`` seconds (1; 0 turns it off) on one
worker at a time, under a lock like the recovery sweep's; a deadline that
passed while no worker ran fires at the first sweep after one starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from ..core.errors import CorruptSession, DispatchError, IllegalTransition, UnknownInstance, UnknownTask
from ..core.state import INTERNAL_PREFIX, Changes, Status
from ..session.extension import Extension
from .forks import storage_io
from .sweeper import PeriodicStep, PeriodicSweep, take_lock

__all__ = ["LOCK_SESSION", "DeadlineOutcome", "DeadlineStep", "DeadlineSweeper", "sweep_deadlines"]

logger = logging.getLogger("celery_triggers")

#: The internal session holding the deadline sweeper's lock.
LOCK_SESSION = INTERNAL_PREFIX + "deadlines"
#: Entries read per storage call (a sweep reads until none is due).
BATCH = 500


@dataclass(frozen=True)
class DeadlineOutcome:
    """What a sweep did with one due entry: ``abandoned`` (the deadline
    passed), ``later`` (not due yet: put back), ``untouched`` (ready,
    resolved or gone: the entry is dropped) or ``error``."""

    session: str
    instance: str
    outcome: str
    detail: str = ""


def sweep_deadlines(
    ext: Extension,
    now: float | None = None,
    *,
    batch: int = BATCH,
    gate: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> list[DeadlineOutcome]:
    """Apply every deadline due at ``now`` (default: ``ext.clock()``) in
    ``ext``'s storage; one outcome per entry read. A storage that cannot be
    reached raises (the entries stay for the next sweep)."""
    backend = ext.storage
    when = ext.clock() if now is None else now
    outcomes: list[DeadlineOutcome] = []
    seen: set[tuple[str, str, float]] = set()
    while True:
        with gate():
            entries = [e for e in backend.due_deadlines(when, batch) if e not in seen]
        for uid, name, due in entries:
            seen.add((uid, name, due))
            outcome, changes = _expire(ext, uid, name, when, gate)
            with gate():
                if changes is None or changes.deadlines.get(name) != due:
                    backend.drop_deadline(uid, name, due)
            outcomes.append(outcome)
        if len(entries) < batch:
            return outcomes


def _expire(
    ext: Extension, uid: str, name: str, now: float, gate: Callable[[], AbstractContextManager[Any]]
) -> tuple[DeadlineOutcome, Changes | None]:
    try:
        with gate():
            changes = ext.session(uid).expire_instance(name, now)
    except DispatchError as exc:  # committed; what the broker refused stays scheduled (the recovery sweep re-sends it)
        logger.error("celery-triggers: deadline of %s in session %r: %s", name, uid, exc)
        changes = exc.changes if isinstance(exc.changes, Changes) else Changes()
    except (UnknownInstance, UnknownTask, CorruptSession, IllegalTransition, ValueError) as exc:
        logger.error("celery-triggers: deadline of %s in session %r dropped: %s", name, uid, exc)
        return DeadlineOutcome(uid, name, "error", str(exc)), None
    instance = changes.instances.get(name)
    if instance is not None and instance.status is Status.ABANDONED:
        missing = ", ".join(instance.metadata.get("missing") or [])
        return DeadlineOutcome(uid, name, "abandoned", f"missing {missing}"), changes
    if name in changes.deadlines:
        return DeadlineOutcome(uid, name, "later", f"due at {changes.deadlines[name]}"), changes
    return DeadlineOutcome(uid, name, "untouched"), changes


class DeadlineSweeper(PeriodicSweep):
    """The deadline sweep, every ``interval`` seconds while it holds the lock."""

    thread_name = "celery-triggers-deadlines"
    what = "deadline sweep"

    def sweep(self) -> list[DeadlineOutcome]:
        with storage_io():
            if not take_lock(self.ext, self.holder, max(self.interval * 2, 2.0), LOCK_SESSION):
                return []
        outcomes = sweep_deadlines(self.ext, gate=storage_io)
        for outcome in outcomes:
            if outcome.outcome == "abandoned":
                logger.warning("celery-triggers: deadline passed: %s in session %r (%s)", *_fields(outcome))
        return outcomes


def _fields(outcome: DeadlineOutcome) -> tuple[str, str, str]:
    return outcome.instance, outcome.session, outcome.detail


class DeadlineStep(PeriodicStep):
    """Runs the deadline sweep in this worker (when it holds the lock)."""

    label = "celery-triggers deadlines"
    setting = "triggers_deadline_interval"
    sweep_class = DeadlineSweeper
