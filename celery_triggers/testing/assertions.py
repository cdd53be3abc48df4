"""Assertions on a session's instances, with failure messages that show the
instance's status, kwargs and, when it failed, its exception and traceback."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..core.state import Instance, Status
from ..session.manager import TriggerManager

__all__ = [
    "TriggerManagerTestCaseMixin",
    "assert_instance_abandoned",
    "assert_instance_failed",
    "assert_instance_finished",
    "assert_instance_missing",
    "assert_instance_replayed",
    "assert_instance_skipped",
    "assert_instance_unstarted",
    "assert_unresolved_instances",
    "assert_unresolved_tasks",
    "describe_instance",
]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def describe_instance(instance: Instance) -> str:
    """A readable summary of an instance for failure messages."""
    lines = [f"{instance.name}: status {instance.status.value}", f"  kwargs: {_json(instance.kwargs)}"]
    if instance.status is Status.FINISHED or instance.result is not None:
        lines.append(f"  result: {_json(instance.result)}")
    meta = instance.metadata
    if meta.get("exc_type"):
        lines.append(f"  exception: {meta['exc_type']}: {meta.get('exc_message', '')}")
        if meta.get("traceback"):
            lines.append("  traceback:\n    " + str(meta["traceback"]).rstrip().replace("\n", "\n    "))
    if meta.get("parent"):
        lines.append(f"  parent: {meta['parent']}")
    return "\n".join(lines)


def _session_summary(manager: TriggerManager) -> str:
    instances = manager.instances
    if not instances:
        return f"session {manager.uid!r} has no instances"
    return f"session {manager.uid!r} has: " + ", ".join(f"{n} ({i.status.value})" for n, i in instances.items())


def _get(manager: TriggerManager, name: str) -> Instance:
    instance = manager.instances.get(name)
    if instance is None:
        raise AssertionError(f"{name} does not exist; {_session_summary(manager)}")
    return instance


def _assert_status(manager: TriggerManager, name: str, expected: Status) -> Instance:
    instance = _get(manager, name)
    if instance.status is not expected:
        raise AssertionError(
            f"{name} is {instance.status.value}, expected {expected.value}\n{describe_instance(instance)}"
        )
    return instance


def assert_instance_finished(manager: TriggerManager, instance_name: str, expected_result: Any = None) -> Instance:
    """The instance finished (and returned ``expected_result`` when given)."""
    instance = _assert_status(manager, instance_name, Status.FINISHED)
    if expected_result is not None and instance.result != expected_result:
        raise AssertionError(
            f"{instance_name} finished with result {_json(instance.result)}, expected {_json(expected_result)}\n"
            + describe_instance(instance)
        )
    return instance


def assert_instance_failed(
    manager: TriggerManager, instance_name: str, exc_type: type[BaseException] | str | None = None
) -> Instance:
    """The instance failed (with an exception of ``exc_type`` when given: a
    class, its name, or its dotted ``module.Name`` as the original framework
    recorded it)."""
    instance = _assert_status(manager, instance_name, Status.FAILED)
    if exc_type is not None:
        expected = exc_type if isinstance(exc_type, str) else exc_type.__name__
        meta = instance.metadata
        recorded = {str(meta.get("exc_type")), f"{meta.get('exc_module')}.{meta.get('exc_type')}"}
        if expected not in recorded:
            raise AssertionError(
                f"{instance_name} failed with {instance.metadata.get('exc_type')}, expected {expected}\n"
                + describe_instance(instance)
            )
    return instance


def assert_instance_abandoned(manager: TriggerManager, instance_name: str) -> Instance:
    return _assert_status(manager, instance_name, Status.ABANDONED)


def assert_instance_replayed(manager: TriggerManager, instance_name: str) -> Instance:
    return _assert_status(manager, instance_name, Status.REPLAYED)


def assert_instance_skipped(manager: TriggerManager, instance_name: str) -> Instance:
    return _assert_status(manager, instance_name, Status.SKIPPED)


def assert_instance_unstarted(manager: TriggerManager, instance_name: str) -> Instance:
    return _assert_status(manager, instance_name, Status.UNSTARTED)


def assert_instance_missing(manager: TriggerManager, instance_name: str) -> None:
    """No instance of that name exists (the task never got that far)."""
    instance = manager.instances.get(instance_name)
    if instance is not None:
        raise AssertionError(f"{instance_name} exists, expected no such instance\n{describe_instance(instance)}")


def _assert_names(kind: str, actual: Iterable[str], expected: Iterable[str], manager: TriggerManager) -> None:
    got, want = sorted(set(actual)), sorted(set(expected))
    if got != want:
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise AssertionError(
            f"unresolved {kind} are {got}, expected {want} (missing: {missing}, unexpected: {extra}); "
            + _session_summary(manager)
        )


def assert_unresolved_tasks(manager: TriggerManager, task_names: Iterable[str]) -> None:
    _assert_names("tasks", (c.name for c in manager.get_unresolved_tasks()), task_names, manager)


def assert_unresolved_instances(manager: TriggerManager, instance_names: Iterable[str]) -> None:
    _assert_names("instances", (i.name for i in manager.get_unresolved_instances()), instance_names, manager)


class TriggerManagerTestCaseMixin:
    """unittest assertions on ``self.manager`` (a :class:`TriggerManager`),
    with the original framework's names."""

    manager: TriggerManager

    def assertInstanceFinished(self, instance_name: str, expected_result: Any = None) -> Instance:
        return assert_instance_finished(self.manager, instance_name, expected_result)

    def assertInstanceFailed(self, instance_name: str, exc_type: type[BaseException] | str | None = None) -> Instance:
        return assert_instance_failed(self.manager, instance_name, exc_type)

    def assertInstanceAbandoned(self, instance_name: str) -> Instance:
        return assert_instance_abandoned(self.manager, instance_name)

    def assertInstanceMissing(self, instance_name: str) -> None:
        assert_instance_missing(self.manager, instance_name)

    def assertInstanceReplayed(self, instance_name: str) -> Instance:
        return assert_instance_replayed(self.manager, instance_name)

    def assertInstanceSkipped(self, instance_name: str) -> Instance:
        return assert_instance_skipped(self.manager, instance_name)

    def assertInstanceUnstarted(self, instance_name: str) -> Instance:
        return assert_instance_unstarted(self.manager, instance_name)

    def assertUnresolvedTasks(self, task_names: Iterable[str]) -> None:
        assert_unresolved_tasks(self.manager, task_names)

    def assertUnresolvedInstances(self, instance_names: Iterable[str]) -> None:
        assert_unresolved_instances(self.manager, instance_names)
