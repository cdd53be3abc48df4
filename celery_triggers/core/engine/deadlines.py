"""Deadlines (``within`` / ``on_timeout``): what a passed deadline does.

An instance of a task with ``within`` gets ``metadata["deadline"]`` (its
creation, the first trigger it received, plus ``within`` seconds) and is
listed in ``changes.deadlines``, which storage indexes by due time. When
the index says a deadline is due, :func:`expire` decides: an instance still
``unstarted`` past its deadline is ``abandoned`` (reason: deadline) and the
task's ``on_timeout`` trigger fires with the instance's name and the
triggers it still missed; anything else is left as it is. The index is a
hint, the instance is the truth: an entry due too early is put back at the
instance's deadline, one for an instance that is ready or gone is dropped.
"""

from __future__ import annotations

from ..config import TaskConfig
from ..state import Changes, Instance, Snapshot, Status
from .work import Configs, Work

__all__ = ["DEADLINE_REASON", "expire", "missing_triggers"]

#: ``metadata["abandoned_reason"]`` of an instance whose deadline passed.
DEADLINE_REASON = "deadline"


def missing_triggers(config: TaskConfig | None, instance: Instance) -> list[str]:
    """The ``after`` (and ``andEvery``) triggers the instance has not received, in config order."""
    if config is None:
        return sorted(instance.awaiting)
    order = [*config.after, *([config.and_every] if config.and_every else [])]
    return [t for t in dict.fromkeys(order) if t not in instance.kwargs]


def expire(snapshot: Snapshot, configs: Configs, name: str, now: float) -> Changes:
    """Apply instance ``name``'s deadline at ``now``.

    * not in the snapshot, not ``unstarted``, or without a deadline:
      no change (``changes.deadlines`` empty: the index entry goes);
    * deadline still ahead: no change, ``changes.deadlines`` says when it is due;
    * deadline passed: ``abandoned`` with ``abandoned_reason="deadline"``
      and ``missing``, then the task's ``on_timeout`` fires with
      ``{"instance": name, "missing": [...]}`` (and cascades as any fire).
    """
    work = Work(snapshot, now)
    instance = work.state.instances.get(name)
    if instance is None or instance.status is not Status.UNSTARTED:
        return work.changes
    due = instance.metadata.get("deadline")
    if not isinstance(due, (int, float)) or isinstance(due, bool):
        return work.changes
    if due > now:
        work.changes.deadlines[name] = float(due)
        return work.changes
    config = configs.get(instance.task)
    missing = missing_triggers(config, instance)
    work.set_status(instance, Status.ABANDONED, abandoned_at=now, abandoned_reason=DEADLINE_REASON, missing=missing)
    if config is not None and config.on_timeout is not None:
        work.fire(configs, config.on_timeout, {"instance": name, "missing": missing})
    return work.changes
