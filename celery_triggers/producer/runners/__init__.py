"""Runner registry: built-in runners plus the ``celery_triggers.runners``
entry point group (``name = "package.module:RunnerClass"``)."""

from __future__ import annotations

from ...core.dispatch import HEADER_INSTANCE, HEADER_SESSION, HEADER_STORAGE, Dispatch
from ...core.errors import UnknownRunner
from ...core.plugins import plugin_names, resolve_plugin
from .base import TaskRunner

__all__ = [
    "HEADER_INSTANCE",
    "HEADER_SESSION",
    "HEADER_STORAGE",
    "Dispatch",
    "TaskRunner",
    "register_runner",
    "resolve_runner_class",
    "runner_names",
]

_GROUP = "celery_triggers.runners"
_BUILTIN = {
    "celery": "celery_triggers.producer.runners.celery:CeleryTaskRunner",
    "eager": "celery_triggers.producer.runners.eager:EagerTaskRunner",
    "threading": "celery_triggers.producer.runners.threaded:ThreadingTaskRunner",
}


_REGISTERED: dict[str, type[TaskRunner]] = {}


def register_runner(name: str, cls: type[TaskRunner]) -> None:
    """Register a runner class in this process (packages use the entry point)."""
    if not (isinstance(cls, type) and issubclass(cls, TaskRunner)):
        raise TypeError(f"a runner must be a TaskRunner subclass, got {cls!r}")
    _REGISTERED[name] = cls


def runner_names() -> list[str]:
    return plugin_names(_BUILTIN, _GROUP, _REGISTERED)


def resolve_runner_class(name: str) -> type[TaskRunner]:
    """The runner class registered as ``name``; :class:`UnknownRunner` if none."""
    cls: type[TaskRunner] | None = resolve_plugin(name, _BUILTIN, _GROUP, _REGISTERED)
    if cls is None:
        raise UnknownRunner(
            f"no task runner named {name!r} (known: {', '.join(runner_names())}; or a dotted path, 'module:Class')"
        )
    if not (isinstance(cls, type) and issubclass(cls, TaskRunner)):
        what = cls.__name__ if isinstance(cls, type) else f"a {type(cls).__name__}"
        raise UnknownRunner(f"{name!r} is {what}, not a TaskRunner subclass")
    return cls
