"""Runner registry: built-in runners plus the ``celery_triggers.runners``
entry point group (``name = "package.module:RunnerClass"``)."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from ..errors import UnknownRunner
from .base import HEADER_INSTANCE, HEADER_SESSION, Dispatch, TaskRunner

__all__ = ["HEADER_INSTANCE", "HEADER_SESSION", "Dispatch", "TaskRunner", "resolve_runner_class", "runner_names"]

_BUILTIN = {
    "celery": "celery_triggers.runners.celery:CeleryTaskRunner",
    "eager": "celery_triggers.runners.eager:EagerTaskRunner",
}


def runner_names() -> list[str]:
    return sorted({*_BUILTIN, *(ep.name for ep in entry_points(group="celery_triggers.runners"))})


def resolve_runner_class(name: str) -> type[TaskRunner]:
    """The runner class registered as ``name``; :class:`UnknownRunner` if none."""
    target = _BUILTIN.get(name)
    if target is not None:
        module, _, attr = target.partition(":")
        cls: type[TaskRunner] = getattr(import_module(module), attr)
        return cls
    for ep in entry_points(group="celery_triggers.runners"):
        if ep.name == name:
            loaded: type[TaskRunner] = ep.load()
            return loaded
    raise UnknownRunner(f"no task runner named {name!r} (known: {', '.join(runner_names())})")
