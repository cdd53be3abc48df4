"""Pure trigger semantics: apply an operation to a :class:`Snapshot`.

Every function takes plain data (configs, a snapshot of the records it needs,
the time ``now``) and returns :class:`Changes` without touching its input. No
I/O, no Celery: the storage layer loads the snapshot described by the
``needs_*`` functions and commits the changes; the manager dispatches
``changes.ready`` after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import TaskConfig, merge_recursive
from ..needs import Needs, needs_for_fire, needs_for_instance, watchers
from ..state import Changes, Instance, Snapshot
from .deadlines import DEADLINE_REASON, expire, missing_triggers
from .lifecycle import (
    cascade_kwargs,
    fail,
    finish,
    lost,
    redispatch,
    replay,
    replay_kwargs,
    retry,
    revoke,
    set_status,
    skip,
    start,
    tokens_of,
)
from .work import Configs, Work, awaiting

__all__ = [
    "DEADLINE_REASON",
    "Needs",
    "awaiting",
    "cascade_kwargs",
    "expire",
    "fail",
    "finish",
    "fire",
    "fire_each",
    "lost",
    "merge_recursive",
    "missing_triggers",
    "needs_for_fire",
    "needs_for_instance",
    "redispatch",
    "replay",
    "replay_kwargs",
    "retry",
    "revoke",
    "set_status",
    "skip",
    "start",
    "task_kwargs",
    "tokens_of",
    "watchers",
]


def task_kwargs(config: TaskConfig, instance: Instance) -> dict[str, dict[str, Any]]:
    """What the task receives: ``with_params`` with the instance's trigger
    kwargs merged in recursively (on a conflict the fired value wins), as
    new plain ``dict``/``list`` data: the body may change it or return it,
    the config and the stored instance stay as they are."""
    return merge_recursive(config.with_params, instance.kwargs)


def fire(snapshot: Snapshot, configs: Configs, trigger: str, kwargs: dict[str, Any], now: float) -> Changes:
    """Fire ``trigger`` with ``kwargs``: record it, create, fill, abandon and
    schedule the instances of every task that watches it."""
    work = Work(snapshot, now)
    work.fire(configs, trigger, kwargs)
    return work.changes


def fire_each(
    snapshot: Snapshot, configs: Configs, events: Sequence[tuple[str, dict[str, Any]]], now: float
) -> tuple[Changes, list[list[str]]]:
    """Fire each ``(trigger, kwargs)`` in turn, as that many :func:`fire`
    calls would in this order with nothing run in between: the changes of
    them all and, per event, the names of the instances it scheduled."""
    work = Work(snapshot, now)
    scheduled = []
    for trigger, kwargs in events:
        before = len(work.changes.ready)
        work.fire(configs, trigger, kwargs)
        scheduled.append(work.changes.ready[before:])
    return work.changes, scheduled
