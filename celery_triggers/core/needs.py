"""What an operation reads: :class:`Needs`, computed from the configuration
alone (pure), so storage loads exactly those records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import Configuration, TaskConfig
from .state import split_instance_name

__all__ = ["Needs", "needs_for_fire", "needs_for_instance", "watchers"]

Configs = Mapping[str, TaskConfig]


@dataclass(frozen=True)
class Needs:
    """The records an operation reads: trigger records, task records, named
    instances, and ``waiting``: for each ``(task, trigger)``, the task's
    unstarted instances that still await that trigger (what a fire of the
    trigger can change; storage indexes them, so a fire never reads the
    other waiting instances). ``all_triggers``: every fired-trigger record
    of the session (inspection only)."""

    triggers: frozenset[str] = frozenset()
    tasks: frozenset[str] = frozenset()
    instances: frozenset[str] = frozenset()
    all_triggers: bool = False
    waiting: frozenset[tuple[str, str]] = frozenset()

    def __or__(self, other: Needs) -> Needs:
        return Needs(
            self.triggers | other.triggers,
            self.tasks | other.tasks,
            self.instances | other.instances,
            self.all_triggers or other.all_triggers,
            self.waiting | other.waiting,
        )


def watchers(configs: Configs, trigger: str) -> Sequence[TaskConfig]:
    """The tasks whose instances ``trigger`` can change, by name (indexed
    when ``configs`` is a :class:`Configuration`)."""
    if isinstance(configs, Configuration):
        return configs.watchers.get(trigger, ())
    return [c for _, c in sorted(configs.items()) if trigger in c.watched]


def needs_for_fire(configs: Configs, trigger: str) -> Needs:
    """Records needed to fire ``trigger``: only the tasks that watch it, and
    their instances that await it."""
    tasks = watchers(configs, trigger)
    triggers = {trigger}
    for config in tasks:
        triggers |= config.watched
    names = frozenset(c.name for c in tasks)
    return Needs(frozenset(triggers), names, waiting=frozenset((name, trigger) for name in names))


def needs_for_instance(configs: Configs, name: str, *, cascade: bool = True) -> Needs:
    """Records needed to change instance ``name`` (and cascade its task name)."""
    task, _ = split_instance_name(name)
    needs = Needs(tasks=frozenset({task}), instances=frozenset({name}))
    return needs | needs_for_fire(configs, task) if cascade else needs
