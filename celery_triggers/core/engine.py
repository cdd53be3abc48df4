"""Pure trigger semantics: apply an operation to a :class:`Snapshot`.

Every function takes plain data (configs, a snapshot of the records it needs,
the time ``now``) and returns :class:`Changes` without touching its input. No
I/O, no Celery: the storage layer loads the snapshot described by the
``needs_*`` functions and commits the changes; the manager dispatches
``changes.ready`` after the commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .config import TaskConfig, merge_recursive
from .errors import IllegalTransition, StaleDispatch, UnknownInstance, UnknownTask
from .needs import Needs, needs_for_fire, needs_for_instance, watchers
from .state import Changes, Instance, Snapshot, Status, TaskRecord, Transition, TriggerRecord

__all__ = [
    "Needs",
    "awaiting",
    "cascade_kwargs",
    "fail",
    "finish",
    "fire",
    "fire_each",
    "merge_recursive",
    "needs_for_fire",
    "needs_for_instance",
    "redispatch",
    "replay",
    "set_status",
    "skip",
    "start",
    "task_kwargs",
    "watchers",
]

Configs = Mapping[str, TaskConfig]


def cascade_kwargs(result: Any) -> dict[str, Any]:
    """The kwargs a finished instance fires its task name with."""
    return dict(result) if isinstance(result, Mapping) else {}


def task_kwargs(config: TaskConfig, instance: Instance) -> dict[str, dict[str, Any]]:
    """What the task receives: ``with_params`` with the instance's trigger
    kwargs merged in recursively (on a conflict the fired value wins), as
    new plain ``dict``/``list`` data: the body may change it or return it,
    the config and the stored instance stay as they are."""
    return merge_recursive(config.with_params, instance.kwargs)


class _Work:
    """A private copy of the snapshot that records what it changed."""

    def __init__(self, snapshot: Snapshot, now: float):
        self.state = snapshot.copy()
        self.now = now
        self.changes = Changes()

    def task(self, name: str) -> TaskRecord:
        record = self.state.tasks.get(name)
        if record is None:
            record = self.state.tasks[name] = TaskRecord(name)
        return record

    def touch_task(self, record: TaskRecord) -> None:
        self.changes.tasks[record.name] = record

    def instance(self, name: str) -> Instance:
        try:
            return self.state.instances[name]
        except KeyError:
            raise UnknownInstance(f"no instance {name!r} in this session") from None

    def set_status(self, instance: Instance, status: Status, **metadata: Any) -> None:
        old = instance.status
        instance.status = status
        if status is not Status.UNSTARTED:
            instance.awaiting = []
        instance.metadata.update(metadata)
        self.changes.instances[instance.name] = instance
        if old is not status:
            self.changes.transitions.append(Transition(instance.name, old, status))
        if status is Status.SCHEDULED and instance.name not in self.changes.ready:
            self.changes.ready.append(instance.name)

    def create(self, config: TaskConfig, kwargs: dict[str, dict[str, Any]], **metadata: Any) -> Instance:
        record = self.task(config.name)
        instance = Instance(config.name, record.next_number, Status.UNSTARTED, kwargs)
        instance.metadata["created_at"] = self.now
        instance.metadata.update(metadata)
        record.next_number += 1
        self.touch_task(record)
        self.state.instances[instance.name] = instance
        self.changes.instances[instance.name] = instance
        self.changes.transitions.append(Transition(instance.name, None, Status.UNSTARTED))
        return instance

    def unstarted(self, task: str) -> list[Instance]:
        """The task's unstarted instances this operation loaded (for a fire:
        those that await the trigger)."""
        found = [i for i in self.state.instances.values() if i.task == task and i.status is Status.UNSTARTED]
        return sorted(found, key=lambda i: i.number)

    def fire(self, configs: Configs, trigger: str, kwargs: dict[str, Any]) -> None:
        record = self.state.triggers.get(trigger) or TriggerRecord(trigger)
        record.count += 1
        record.kwargs = kwargs
        self.state.triggers[trigger] = record
        self.changes.triggers[trigger] = record
        self.changes.fired.append(trigger)
        fired = {name: r.kwargs for name, r in self.state.triggers.items() if r.count > 0}
        for config in watchers(configs, trigger):
            self._apply_fire(config, trigger, kwargs, fired)

    def _apply_fire(
        self, config: TaskConfig, trigger: str, kwargs: dict[str, Any], fired: Mapping[str, dict[str, Any]]
    ) -> None:
        """The original framework's rule for one task that uses ``trigger``
        (in ``after``, which includes ``andEvery``, or in ``unless``).

        * No instance yet: create one (``unstarted``) holding the latest
          kwargs of its triggers that already fired, then apply this one.
        * Otherwise apply the trigger to every unstarted instance that has
          not received it (first kwargs win per instance); only the
          ``andEvery`` trigger, when it could not be applied to any, makes a
          new instance.
        * An instance whose ``unless`` set is complete is ``abandoned`` at
          once; one whose ``after`` set is complete is scheduled.
        """
        record = self.task(config.name)
        touched: list[Instance] = []
        if record.next_number:
            create = trigger == config.and_every
            for instance in self.unstarted(config.name):
                if _receive(config, instance, trigger, kwargs):
                    self.changes.instances[instance.name] = instance
                    touched.append(instance)
                    create = False
        else:
            create = True
        if create:
            consumed = {name: fired[name] for name in sorted(config.required) if name != trigger and name in fired}
            unless = [name for name in config.unless if name != trigger and name in fired]
            instance = self.create(config, consumed)
            instance.unless_fired = unless
            _receive(config, instance, trigger, kwargs)
            touched.append(instance)
        for instance in touched:
            if config.unless and set(config.unless) <= set(instance.unless_fired):
                record.abandoned = True
                self.touch_task(record)
                self.set_status(instance, Status.ABANDONED, abandoned_at=self.now)
            elif config.required <= instance.kwargs.keys():
                self.set_status(instance, Status.SCHEDULED, scheduled_at=self.now)
            else:
                instance.awaiting = awaiting(config, instance)


def awaiting(config: TaskConfig, instance: Instance) -> list[str]:
    """The triggers an unstarted instance still awaits (``after``, which
    includes ``andEvery``, and ``unless``): what storage indexes it by."""
    pending = (config.required - instance.kwargs.keys()) | (set(config.unless) - set(instance.unless_fired))
    return sorted(pending)


def _receive(config: TaskConfig, instance: Instance, trigger: str, kwargs: dict[str, Any]) -> bool:
    """Apply ``trigger`` to an unstarted instance that has not received it
    (the original's ``apply_trigger``); whether it applied."""
    applied = False
    if trigger in config.required and trigger not in instance.kwargs:
        instance.kwargs[trigger] = kwargs
        applied = True
    if trigger in config.unless and trigger not in instance.unless_fired:
        instance.unless_fired = [*instance.unless_fired, trigger]
        applied = True
    return applied


def _config(configs: Configs, task: str) -> TaskConfig:
    try:
        return configs[task]
    except KeyError:
        raise UnknownTask(f"no trigger task {task!r} is configured") from None


def fire(snapshot: Snapshot, configs: Configs, trigger: str, kwargs: dict[str, Any], now: float) -> Changes:
    """Fire ``trigger`` with ``kwargs``: record it, create, fill, abandon and
    schedule the instances of every task that watches it."""
    work = _Work(snapshot, now)
    work.fire(configs, trigger, kwargs)
    return work.changes


def fire_each(
    snapshot: Snapshot, configs: Configs, events: Sequence[tuple[str, dict[str, Any]]], now: float
) -> tuple[Changes, list[list[str]]]:
    """Fire each ``(trigger, kwargs)`` in turn, as that many :func:`fire`
    calls would in this order with nothing run in between: the changes of
    them all and, per event, the names of the instances it scheduled."""
    work = _Work(snapshot, now)
    scheduled = []
    for trigger, kwargs in events:
        before = len(work.changes.ready)
        work.fire(configs, trigger, kwargs)
        scheduled.append(work.changes.ready[before:])
    return work.changes, scheduled


def _check_token(instance: Instance, token: str | None) -> None:
    """Refuse a message that is not the instance's current dispatch."""
    if token is None:
        return
    current = instance.metadata.get("task_id")
    if current != token:
        raise StaleDispatch(
            f"{instance.name}: message {token} is not its current dispatch ({current or 'none recorded'})"
        )


def start(
    snapshot: Snapshot, name: str, now: float, token: str | None = None, *, track: bool = True, **metadata: Any
) -> Changes:
    """A worker starts the instance's message ``token`` (``scheduled`` ->
    ``running``).

    Only the current dispatch may start: another token raises
    :class:`StaleDispatch`. A redelivery of the current message (the worker
    died, or Celery retried it) finds the instance ``running`` and starts it
    again. With ``track`` false the start is only checked, nothing is written
    (the instance goes ``scheduled`` -> ``finished``, like Celery's
    ``task_track_started=False``).
    """
    work = _Work(snapshot, now)
    instance = work.instance(name)
    if instance.status not in (Status.SCHEDULED, Status.RUNNING):
        raise IllegalTransition(f"{name} is {instance.status.value}; only a scheduled instance can start")
    _check_token(instance, token)
    if not track:
        return work.changes
    attempts = int(instance.metadata.get("attempts", 0)) + 1
    work.set_status(instance, Status.RUNNING, started_at=now, attempts=attempts, **metadata)
    return work.changes


def redispatch(snapshot: Snapshot, name: str, token: str, now: float, expected: str | None = None) -> Changes:
    """Give a ``scheduled`` instance a new dispatch token (its next message);
    the previous message becomes stale. ``expected``: the token the caller
    saw, so that two recoveries racing re-send it once."""
    work = _Work(snapshot, now)
    instance = work.instance(name)
    if instance.status is not Status.SCHEDULED:
        raise IllegalTransition(f"{name} is {instance.status.value}; only a scheduled instance can be re-sent")
    _check_token(instance, expected)
    dispatches = int(instance.metadata.get("dispatches", 1)) + 1
    work.set_status(instance, Status.SCHEDULED, task_id=token, redispatched_at=now, dispatches=dispatches)
    return work.changes


def finish(
    snapshot: Snapshot,
    configs: Configs,
    name: str,
    result: Any,
    now: float,
    token: str | None = None,
    **metadata: Any,
) -> Changes:
    """The instance's task returned ``result``: finish it and cascade, once.

    A second finish of the same instance (a redelivered message, a retried
    commit whose reply was lost) changes nothing, so the cascade happens
    exactly once. ``token``: the dispatch that ran (see :func:`start`).
    """
    work = _Work(snapshot, now)
    instance = work.instance(name)
    if instance.status is Status.FINISHED:
        return work.changes
    if instance.status not in (Status.SCHEDULED, Status.RUNNING):
        raise IllegalTransition(f"{name} is {instance.status.value}; only a scheduled or running instance can finish")
    _check_token(instance, token)
    instance.result = result
    work.set_status(instance, Status.FINISHED, finished_at=now, **metadata)
    work.fire(configs, instance.task, cascade_kwargs(result))
    return work.changes


def fail(snapshot: Snapshot, name: str, error: Mapping[str, Any], now: float, token: str | None = None) -> Changes:
    """The instance's task raised: record the exception, do not cascade.

    Failing an instance that this dispatch already failed changes nothing
    (a retried commit)."""
    work = _Work(snapshot, now)
    instance = work.instance(name)
    if instance.status is Status.FAILED and token is not None and instance.metadata.get("task_id") == token:
        return work.changes
    if instance.status not in (Status.SCHEDULED, Status.RUNNING):
        raise IllegalTransition(f"{name} is {instance.status.value}; only a scheduled or running instance can fail")
    _check_token(instance, token)
    work.set_status(instance, Status.FAILED, failed_at=now, **error)
    return work.changes


def replay_kwargs(
    instance: Instance,
    replacement: dict[str, dict[str, Any]] | None = None,
    update: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The kwargs a replay's clone gets: ``replacement`` instead of the
    instance's (the original framework's meaning), or the instance's with
    the triggers ``update`` names replaced (a per-trigger merge)."""
    source = instance.kwargs if replacement is None else replacement
    merged = {k: dict(v) for k, v in source.items()}
    merged.update({k: dict(v) for k, v in (update or {}).items()})
    return merged


def _clone(
    work: _Work, configs: Configs, instance: Instance, kwargs: dict[str, dict[str, Any]] | None, **metadata: Any
) -> Instance:
    """Schedule a copy of ``instance``. As in the original framework, a
    replay runs whatever the task's ``unless`` says: it is an explicit
    decision."""
    config = _config(configs, instance.task)
    source = instance.kwargs if kwargs is None else kwargs
    clone = work.create(config, {k: dict(v) for k, v in source.items()}, parent=instance.name, **metadata)
    instance.metadata["replayed_by"] = clone.name
    work.set_status(clone, Status.SCHEDULED, scheduled_at=work.now)
    return clone


def replay(
    snapshot: Snapshot,
    configs: Configs,
    name: str,
    replacement_kwargs: dict[str, dict[str, Any]] | None,
    now: float,
    kwargs_update: dict[str, dict[str, Any]] | None = None,
) -> Changes:
    """Mark a failed instance ``replayed`` and schedule a clone ``t_x#N+1``
    (its kwargs: :func:`replay_kwargs`)."""
    work = _Work(snapshot, now)
    instance = work.instance(name)
    if instance.status is not Status.FAILED:
        raise IllegalTransition(f"{name} is {instance.status.value}; only a failed instance can be replayed")
    work.set_status(instance, Status.REPLAYED, replayed_at=now)
    _clone(work, configs, instance, replay_kwargs(instance, replacement_kwargs, kwargs_update))
    return work.changes


def retry(
    snapshot: Snapshot,
    configs: Configs,
    name: str,
    error: Mapping[str, Any],
    replacement_kwargs: dict[str, dict[str, Any]] | None,
    countdown: float | None,
    now: float,
    **metadata: Any,
) -> Changes:
    """A running task asked to be retried: mark it ``replayed`` (with the
    error that caused it) and schedule a clone after ``countdown`` seconds."""
    work = _Work(snapshot, now)
    instance = work.instance(name)
    if instance.status not in (Status.SCHEDULED, Status.RUNNING):
        raise IllegalTransition(f"{name} is {instance.status.value}; only a running instance can retry")
    work.set_status(instance, Status.REPLAYED, replayed_at=now, **error, **metadata)
    retries = int(instance.metadata.get("retries", 0)) + 1
    extra = {"countdown": countdown} if countdown else {}
    _clone(work, configs, instance, replacement_kwargs, retries=retries, **extra)
    return work.changes


def skip(
    snapshot: Snapshot,
    configs: Configs,
    name: str,
    cascade: bool,
    result: Any,
    now: float,
    *,
    own: bool = False,
    **metadata: Any,
) -> Changes:
    """Mark a failed instance ``skipped`` (or, with ``own``, a running one
    that skips itself); optionally cascade as if it had returned ``result``."""
    work = _Work(snapshot, now)
    instance = work.instance(name)
    allowed = {Status.FAILED, Status.RUNNING, Status.SCHEDULED} if own else {Status.FAILED}
    if instance.status not in allowed:
        raise IllegalTransition(f"{name} is {instance.status.value}; only a failed instance can be skipped")
    instance.result = result
    work.set_status(instance, Status.SKIPPED, skipped_at=now, **metadata)
    if cascade:
        work.fire(configs, instance.task, cascade_kwargs(result))
    return work.changes


def set_status(
    snapshot: Snapshot,
    configs: Configs,
    name: str,
    status: Status | None,
    metadata: Mapping[str, Any] | None,
    cascade: bool,
    kwargs: dict[str, Any] | None,
    now: float,
) -> Changes:
    """Operator override: force a status (None: keep it) and merge
    ``metadata``, optionally cascading ``kwargs``.

    Forcing ``scheduled`` on an instance that was not scheduled sends it
    (with a new dispatch token); an instance already scheduled keeps its
    message (:func:`redispatch` sends another). ``cascade`` fires the
    instance's task name only when the status changes, so repeating an
    override never cascades twice."""
    work = _Work(snapshot, now)
    instance = work.instance(name)
    old = instance.status
    new = old if status is None else status
    work.set_status(instance, new, **dict(metadata or {}))
    if new is Status.UNSTARTED and instance.task in configs:
        instance.awaiting = awaiting(configs[instance.task], instance)
    work.changes.ready.clear()
    if new is Status.SCHEDULED and old is not Status.SCHEDULED:
        instance.metadata.pop("task_id", None)  # a new message: a new token
        work.changes.ready.append(name)
    if cascade and new is not old:
        work.fire(configs, instance.task, kwargs or {})
    return work.changes
