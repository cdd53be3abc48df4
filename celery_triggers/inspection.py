"""Read-only views of a session, mixed into :class:`TriggerManager`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import engine
from .config import Configuration, TaskConfig
from .state import Instance, Snapshot, split_instance_name

if TYPE_CHECKING:
    from .storage import SessionStorage, SessionTxn

__all__ = ["SessionInspection", "instance_ref"]


def instance_ref(ref: str | Instance) -> str:
    """An instance name from a name or an :class:`Instance`; a malformed
    name is an :class:`UnknownInstance`."""
    from .errors import UnknownInstance

    name = ref.name if isinstance(ref, Instance) else ref
    if not isinstance(name, str):
        raise UnknownInstance(f"expected an instance name or Instance, got {ref!r}")
    try:
        split_instance_name(name)
    except ValueError as exc:
        raise UnknownInstance(str(exc)) from None
    return name


class SessionInspection:
    """Instances, unresolved work and a debug dump of one session."""

    storage: SessionStorage

    @property
    def uid(self) -> str:
        return self.storage.uid

    def _configs(self, txn: SessionTxn) -> Configuration:
        raise NotImplementedError

    def get_configuration(self) -> Configuration:
        """App-wide configs overlaid with this session's own."""
        return self.storage.atomic(self._configs)

    # -- inspection ---------------------------------------------------------
    @property
    def instances(self) -> dict[str, Instance]:
        """Every instance of the session, by name (a fresh read)."""
        return dict(sorted(self.storage.instances().items(), key=lambda kv: split_instance_name(kv[0])))

    def instances_by_name(self, ref: str | Instance) -> Instance:
        return self.storage.instance(instance_ref(ref))

    def instances_of_task(self, task: str | TaskConfig) -> list[Instance]:
        """The task's instances; :class:`UnknownTask` if no such task is
        configured (app-wide or for this session)."""
        from .errors import UnknownTask

        name = task.name if isinstance(task, TaskConfig) else task
        if name not in self.get_configuration():
            raise UnknownTask(f"no trigger task {name!r} is configured for session {self.uid!r}")
        return [i for i in self.instances.values() if i.task == name]

    def get_unresolved_instances(self) -> list[Instance]:
        return [i for i in self.instances.values() if not i.is_resolved]

    def get_instances_with_unresolved_logs(self) -> list[Instance]:
        """Instances whose task logged a WARNING or worse, not yet marked
        resolved (``mark_instance_logs_resolved``)."""
        return [i for i in self.instances.values() if (i.metadata.get("log_level") or 0) >= logging.WARNING]

    def overview(self) -> tuple[Configuration, Snapshot]:
        """The configuration and every fired-trigger and task record it
        refers to (for inspection; one read)."""

        def read(txn: SessionTxn) -> tuple[Configuration, Snapshot]:
            configs = self._configs(txn)
            triggers = frozenset().union(*(c.watched for c in configs.values())) if configs else frozenset()
            return configs, txn.load(engine.Needs(triggers=triggers, tasks=frozenset(configs)))

        return self.storage.atomic(read)

    def get_unresolved_tasks(self) -> list[TaskConfig]:
        """Configured tasks that still need attention: an unresolved instance,
        or no instance yet while the task can still run (its ``unless`` has
        not held)."""
        configs, snapshot = self.overview()
        instances = self.instances.values()
        seen = {i.task for i in instances}
        unresolved = {i.task for i in instances if not i.is_resolved}
        abandoned = {name for name, record in snapshot.tasks.items() if record.abandoned}
        return [
            config
            for name, config in sorted(configs.items())
            if name in unresolved or (name not in seen and name not in abandoned)
        ]

    def latest_kwargs(self, trigger_name: str) -> dict[str, Any] | None:
        """The kwargs ``trigger_name`` last fired with, or None if it never fired."""
        snapshot = self.storage.atomic(lambda txn: txn.load(engine.Needs(triggers=frozenset({trigger_name}))))
        record = snapshot.triggers.get(trigger_name)
        return record.kwargs if record is not None else None

    def debug_repr(self) -> dict[str, Any]:
        """The whole session as plain data, for logs and bug reports."""
        return {
            "uid": self.uid,
            "configuration": {name: c.to_dict() for name, c in sorted(self.get_configuration().items())},
            "instances": {name: i.to_dict() for name, i in self.instances.items()},
        }
