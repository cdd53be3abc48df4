"""Read-only views of a session, mixed into :class:`TriggerManager`."""

from __future__ import annotations

import logging
import time
import warnings
from typing import TYPE_CHECKING, Any

from ..core.config import Configuration, TaskConfig
from ..core.needs import Needs
from ..core.state import IN_FLIGHT, Instance, Snapshot, split_instance_name
from ..storage import SessionStorage

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..storage import SessionTxn

__all__ = ["SessionInspection", "SessionStorageView", "instance_ref"]


def instance_ref(ref: str | Instance) -> str:
    """An instance name from a name or an :class:`Instance`; a malformed
    name is an :class:`UnknownInstance`."""
    from ..core.errors import UnknownInstance

    name = ref.name if isinstance(ref, Instance) else ref
    if not isinstance(name, str):
        raise UnknownInstance(f"expected an instance name or Instance, got {ref!r}")
    try:
        split_instance_name(name)
    except ValueError as exc:
        raise UnknownInstance(str(exc)) from None
    return name


def _pending(instances: dict[str, Instance], until: str) -> list[Instance] | None:
    """What ``wait`` still waits for (None: done)."""
    if until == "idle":
        busy = [i for i in instances.values() if i.status in IN_FLIGHT]
        return busy or None
    if "#" in until:
        found = instances.get(until)
        return None if found is not None and found.is_resolved else ([found] if found else [])
    mine = [i for i in instances.values() if i.task == until]
    unresolved = [i for i in mine if not i.is_resolved]
    return None if mine and not unresolved else unresolved


def _since(instance: Instance, now: float) -> float:
    """When the instance entered its current status (best known)."""
    meta = instance.metadata
    for key in (f"{instance.status.value}_at", "started_at", "scheduled_at", "created_at"):
        if meta.get(key):
            return float(meta[key])
    return now


class SessionInspection:
    """Instances, unresolved work and a debug dump of one session."""

    storage: SessionStorage

    @property
    def uid(self) -> str:
        return self.storage.uid

    def configs_in(self, txn: SessionTxn) -> Configuration:
        """The configuration in force for this session (the manager's)."""
        raise NotImplementedError

    def get_configuration(self) -> Configuration:
        """App-wide configs overlaid with this session's own."""
        return self.storage.read(self.configs_in)

    # -- inspection ---------------------------------------------------------
    @property
    def instances(self) -> dict[str, Instance]:
        """Every instance of the session, by name.

        **Storage I/O on every access**: each ``manager.instances`` reads the
        whole session again (one round trip on Redis, one query on SQLite).
        Keep the result in a variable rather than reading it in a loop; use
        :meth:`instance` for one instance."""
        found = self.storage.backend.instances(self.uid)
        return dict(sorted(found.items(), key=lambda kv: split_instance_name(kv[0])))

    def instance(self, ref: str | Instance) -> Instance:
        """One instance, read from storage (``"t_x#0"`` or an
        :class:`Instance`); :class:`UnknownInstance` if there is none."""
        return self.storage.instance(instance_ref(ref))

    def instances_by_name(self, ref: str | Instance) -> Instance:
        """Deprecated name of :meth:`instance` (it returns one instance)."""
        warnings.warn(
            "instances_by_name() is deprecated: use instance(), it returns one instance",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.instance(ref)

    def instances_of_task(self, task: str | TaskConfig) -> list[Instance]:
        """The task's instances; :class:`UnknownTask` if no such task is
        configured (app-wide or for this session)."""
        from ..core.errors import UnknownTask

        name = task.name if isinstance(task, TaskConfig) else task
        if name not in self.get_configuration():
            raise UnknownTask(f"no trigger task {name!r} is configured for session {self.uid!r}")
        return [i for i in self.instances.values() if i.task == name]

    def wait(self, timeout: float = 30.0, *, until: str = "idle", interval: float = 0.2) -> dict[str, Instance]:
        """Block until the session is idle (no instance scheduled or
        running), or until ``until`` names an instance (``"t_x#0"``) that is
        resolved, or a task (``"t_x"``) with instances all resolved; return
        the instances.

        Cost: one read of every instance of the session per poll, every
        ``interval`` seconds (at least 0.1). Raises :class:`WaitTimeout`,
        listing what is not resolved yet, after ``timeout`` seconds.
        """
        from ..core.errors import WaitTimeout

        interval = max(float(interval), 0.1)
        deadline = time.monotonic() + timeout
        if until != "idle":
            self._check_until(until)
        while True:
            instances = self.instances
            pending = _pending(instances, until)
            if pending is None:
                return instances
            if time.monotonic() >= deadline:
                now = time.time()
                shown = "; ".join(f"{i.name} {i.status.value} for {now - _since(i, now):.1f} s" for i in pending)
                goal = "idle" if until == "idle" else f"{until} resolved"
                hint = "(is a worker consuming the queue?)"
                if not instances and not self.overview()[1].triggers:
                    hint = f"(session {self.uid!r} does not exist: nothing was fired into it; is the UID right?)"
                raise WaitTimeout(
                    f"session {self.uid!r}: not {goal} after {timeout:g} s: {shown or 'no instance yet'} {hint}",
                    instances,
                )
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    def _check_until(self, until: str) -> None:
        """``wait``'s target names a configured task (or one with instances):
        else it could never be reached, and waiting would only time out."""
        from ..core.errors import UnknownInstance, UnknownTask

        task, sep, number = until.partition("#")
        if task not in self.get_configuration() and all(i.task != task for i in self.instances.values()):
            raise UnknownTask(
                f"cannot wait until {until!r}: no trigger task {task!r} is configured for session {self.uid!r} "
                "(until= takes 'idle', a task 't_x' or an instance 't_x#0')"
            )
        if sep and not number.isdigit():
            raise UnknownInstance(
                f"cannot wait until {until!r}: an instance is named by its task and a number ('{task}#0')"
            )

    def get_unresolved_instances(self) -> list[Instance]:
        return [i for i in self.instances.values() if not i.is_resolved]

    def get_instances_with_unresolved_logs(self) -> list[Instance]:
        """Instances whose task logged a WARNING or worse, not yet marked
        resolved (``mark_instance_logs_resolved``)."""
        return [i for i in self.instances.values() if (i.metadata.get("log_level") or 0) >= logging.WARNING]

    def overview(self) -> tuple[Configuration, Snapshot]:
        """The configuration, every fired-trigger record of the session and
        the task records of the configured tasks (for inspection; one read)."""

        def read(txn: SessionTxn) -> tuple[Configuration, Snapshot]:
            configs = self.configs_in(txn)
            return configs, txn.load(Needs(tasks=frozenset(configs), all_triggers=True))

        return self.storage.read(read)

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

    def all_latest_kwargs(self) -> dict[str, dict[str, Any]]:
        """Every trigger fired in the session -> the kwargs it last fired with."""
        snapshot = self.storage.read(lambda txn: txn.load(Needs(all_triggers=True)))
        return {name: record.kwargs for name, record in sorted(snapshot.triggers.items())}

    def latest_kwargs(self, trigger_name: str) -> dict[str, Any] | None:
        """The kwargs ``trigger_name`` last fired with, or None if it never fired."""
        snapshot = self.storage.read(lambda txn: txn.load(Needs(triggers=frozenset({trigger_name}))))
        record = snapshot.triggers.get(trigger_name)
        return record.kwargs if record is not None else None

    def debug_repr(self) -> dict[str, Any]:
        """The whole session as plain data, for logs and bug reports."""
        return {
            "uid": self.uid,
            "configuration": {name: c.to_dict() for name, c in sorted(self.get_configuration().items())},
            "instances": {name: i.to_dict() for name, i in self.instances.items()},
        }


class SessionStorageView(SessionStorage):
    """``manager.storage``: the session's storage, with the inspection
    surface of the original framework's storage backend, so that code
    written for it keeps working (``inspecting.rst``)::

        manager.storage["t_x#0"]                  # an instance (with .config)
        manager.storage.instances                 # name -> instance
        manager.storage.tasks                     # name -> task config
        manager.storage.latest_kwargs             # trigger -> latest kwargs
        manager.storage.get_unresolved_tasks()    # and the other methods below

    A thin layer over :class:`SessionInspection` (the snake_case manager
    API stays the primary one); every access reads storage afresh.
    """

    def __init__(self, storage: SessionStorage, inspection: SessionInspection):
        super().__init__(storage.backend, storage.uid)
        self._inspection = inspection

    def _with_configs(self, instances: dict[str, Instance]) -> dict[str, Instance]:
        configs = self._inspection.get_configuration()
        for instance in instances.values():
            instance.config = configs.get(instance.task)
        return instances

    def __getitem__(self, name: str) -> Instance:
        """The original framework's ``storage["t_x#0"]``: one instance, with
        its ``.config``; a missing one is an :class:`UnknownInstance` (a
        ``KeyError``)."""
        instance = self._inspection.instance(name)
        return self._with_configs({name: instance})[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._inspection.instances  # no config needed

    @property
    def instances(self) -> dict[str, Instance]:
        return self._with_configs(self._inspection.instances)

    def iter_instances(self) -> Iterator[Instance]:
        return iter(self.instances.values())

    @property
    def tasks(self) -> dict[str, TaskConfig]:
        return dict(self._inspection.get_configuration())

    @property
    def latest_kwargs(self) -> dict[str, dict[str, Any]]:
        return self._inspection.all_latest_kwargs()

    def get_unresolved_tasks(self) -> list[TaskConfig]:
        return self._inspection.get_unresolved_tasks()

    def get_unresolved_instances(self) -> list[Instance]:
        return list(self._with_configs({i.name: i for i in self._inspection.get_unresolved_instances()}).values())

    def get_instances_with_unresolved_logs(self) -> list[Instance]:
        return self._inspection.get_instances_with_unresolved_logs()

    def instances_of_task(self, task: str | TaskConfig) -> dict[str, Instance]:
        """The original returns them by name."""
        return self._with_configs({i.name: i for i in self._inspection.instances_of_task(task)})

    def debug_repr(self) -> dict[str, Any]:
        return self._inspection.debug_repr()
