"""The runner contract: turn ready instances into execution."""

from __future__ import annotations

import abc
import inspect
import weakref
from typing import TYPE_CHECKING, Any

from ...core.dispatch import Dispatch
from ...core.errors import DispatchError
from ...session.host import installed

if TYPE_CHECKING:
    from celery import Celery


__all__ = ["TaskRunner", "accepted_keywords", "message_kwargs"]

#: Task class -> accepted keywords (one class per Celery task).
_accepts: weakref.WeakKeyDictionary[type, frozenset[str]] = weakref.WeakKeyDictionary()


def accepted_keywords(task: Any) -> frozenset[str]:
    """Which of ``trigger_kwargs`` and ``context`` the task's signature takes
    (by name, or both through ``**kwargs``)."""
    key = task.__class__  # not type(): a task may be a Celery proxy
    found = _accepts.get(key)
    if found is None:
        try:
            params = list(inspect.signature(task.run).parameters.values())
        except (TypeError, ValueError):
            params = []
        if any(p.kind is p.VAR_KEYWORD for p in params):
            found = frozenset({"trigger_kwargs", "context"})
        else:
            found = frozenset(p.name for p in params) & {"trigger_kwargs", "context"}
        _accepts[key] = found
    return found


def message_kwargs(task: Any) -> dict[str, Any]:
    """The keyword arguments to send: placeholders for ``trigger_kwargs``
    and ``context`` when the task takes them (Celery checks a call's
    arguments when it is sent). The worker replaces them with the kwargs
    storage holds and the live context: a message never decides what a
    task receives."""
    return dict.fromkeys(accepted_keywords(task))


class TaskRunner(abc.ABC):
    """Executes ready instances. Subclass and register under a name through
    the ``celery_triggers.producer.runners`` entry point.

    ``dispatch`` is called right after the storage commit that made the
    instances ``scheduled``; ``drain`` after the manager's ``_post_fire``
    hook (runners that execute in-process run the queued work there).
    """

    #: Name used by the ``using`` directive and ``triggers_runner`` setting.
    name: str = ""
    #: Runs each instance before the caller's next operation (the eager
    #: runner): ``fire_many`` then fires event by event, as a loop would.
    runs_in_caller: bool = False
    #: Sends a message per instance to workers (which then check the
    #: storage's epoch it carries); in-process runners do not.
    sends_messages: bool = False

    def __init__(self, app: Celery):
        self.app = app

    def task_for(self, item: Dispatch) -> Any:
        """The Celery task that runs ``item`` in this process, routed
        through the worker protocol."""
        task = self.app.tasks[item.config.run]
        host = installed(self.app)
        if host is not None:
            host.prepare_task(task)
        return task

    def check_registered(self, items: list[Dispatch]) -> None:
        """For in-process runners: every task must be registered here."""
        for item in items:
            if item.config.run not in self.app.tasks:
                raise DispatchError(
                    f"{item.instance.name}: Celery task {item.config.run!r} is not registered", [item.instance.name]
                )

    @abc.abstractmethod
    def dispatch(self, items: list[Dispatch]) -> None:
        """Send or queue ``items``. Raise for items that could not be sent."""

    def drain(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Run queued work, if this runner queues any. Default: nothing."""
