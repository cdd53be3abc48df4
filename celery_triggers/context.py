"""What a running trigger task knows about itself: ``current_context()``."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import NotInTriggerTask

if TYPE_CHECKING:
    from .manager import TriggerManager

__all__ = ["TaskContext", "current_context"]

_current: ContextVar[TaskContext | None] = ContextVar("celery_triggers_context", default=None)


@dataclass
class TaskContext:
    """The session, instance and trigger kwargs of the running trigger task."""

    session_uid: str
    instance_name: str
    #: trigger name -> kwargs (``withParams`` merged in).
    trigger_kwargs: dict[str, dict[str, Any]]
    manager: TriggerManager
    task_id: str | None = None
    _token: Any = field(default=None, repr=False)

    @property
    def task_name(self) -> str:
        return self.instance_name.rpartition("#")[0]


def current_context() -> TaskContext:
    """The context of the trigger task running in this thread.

    Raises :class:`NotInTriggerTask` outside a trigger task.
    """
    context = _current.get()
    if context is None:
        raise NotInTriggerTask("current_context() is only available inside a Celery task started by celery-triggers")
    return context


def push_context(context: TaskContext) -> None:
    context._token = _current.set(context)


def pop_context(task_id: str | None) -> TaskContext | None:
    context = _current.get()
    if context is None or (task_id is not None and context.task_id not in (None, task_id)):
        return None
    if context._token is not None:
        try:
            _current.reset(context._token)
        except ValueError:  # set in another Context (should not happen); fall back
            _current.set(None)
    else:
        _current.set(None)
    return context


def peek_context(task_id: str | None) -> TaskContext | None:
    context = _current.get()
    if context is None or (task_id is not None and context.task_id not in (None, task_id)):
        return None
    return context
