"""The working copy an engine operation changes, and the original
framework's rule for applying a fired trigger to a task's instances."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import TaskConfig
from ..errors import UnknownInstance, UnknownTask
from ..needs import watchers
from ..state import Changes, Instance, Snapshot, Status, TaskRecord, Transition, TriggerRecord

__all__ = ["Configs", "Work", "awaiting", "config_of"]

Configs = Mapping[str, TaskConfig]


class Work:
    """A working copy of the snapshot that records what it changed (one
    operation's; each engine function builds one)."""

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
            self.changes.deadlines.pop(instance.name, None)  # ready or resolved: no deadline to keep
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
        if config.within is not None and "parent" not in metadata:  # a replay's clone is scheduled at once
            instance.metadata["deadline"] = self.now + config.within
            self.changes.deadlines[instance.name] = instance.metadata["deadline"]
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
                if receive(config, instance, trigger, kwargs):
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
            receive(config, instance, trigger, kwargs)
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


def receive(config: TaskConfig, instance: Instance, trigger: str, kwargs: dict[str, Any]) -> bool:
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


def config_of(configs: Configs, task: str) -> TaskConfig:
    try:
        return configs[task]
    except KeyError:
        raise UnknownTask(f"no trigger task {task!r} is configured") from None
