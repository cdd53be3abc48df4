"""What a running trigger task knows about itself: ``current_context()``."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery.exceptions import Ignore

from ..core.errors import MaxRetriesExceeded, NotInTriggerTask
from .logs import TriggerLoggerAdapter

if TYPE_CHECKING:
    from .manager import TriggerManager

__all__ = ["TaskContext", "TaskResolved", "current_context"]

_current: ContextVar[TaskContext | None] = ContextVar("celery_triggers_context", default=None)


class TaskResolved(Ignore):  # type: ignore[misc]  # celery is untyped
    """Raised by a task that resolved its own instance (``context.retry()``,
    ``context.skip()``): Celery records nothing more for this message."""


@dataclass
class TaskContext:
    """The session, instance and trigger kwargs of the running trigger task."""

    session_uid: str
    instance_name: str
    #: trigger name -> kwargs (``withParams`` merged in).
    trigger_kwargs: dict[str, dict[str, Any]]
    manager: TriggerManager
    task_id: str | None = None
    #: The Celery task object (for ``max_retries``).
    task: Any = field(default=None, repr=False)
    #: How many times ``context.retry()`` made this instance's ancestors.
    retries: int = 0
    #: Highest level logged through ``get_logger_context`` (0: nothing).
    max_log_level: int = logging.NOTSET
    #: Set when the task resolved its own instance (skip, retry).
    outcome: str | None = None
    _token: Any = field(default=None, repr=False)

    @property
    def task_name(self) -> str:
        return self.instance_name.rpartition("#")[0]

    def __json__(self) -> None:
        """A context passed as the ``context`` keyword is sent as ``null``
        when Celery re-sends the message (``self.retry()``); the worker
        injects a fresh one."""
        return None

    # -- kwargs -------------------------------------------------------------
    def validate_kwargs(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and convert trigger kwargs per trigger with pydantic
        (``{"firstPageReceived": PageModel}``); raises one
        :class:`KwargsValidationError` listing every problem."""
        from .validation import validate_kwargs

        return validate_kwargs(self.instance_name, self.trigger_kwargs, spec)

    def filter_kwargs(self, spec: Mapping[str, Mapping[str, Any]]) -> Any:
        """The original framework's form: run each trigger's kwargs through
        a ``FilterMapper`` of ``spec[trigger]`` (the Filters library,
        ``pip install 'celery-triggers[filters]'``); raises one
        :class:`KwargsValidationError` naming every invalid field."""
        from .validation import filter_kwargs

        return filter_kwargs(self.instance_name, self.trigger_kwargs, spec)

    # -- logging ------------------------------------------------------------
    @contextmanager
    def get_logger_context(self, extra: Mapping[str, Any] | None = None) -> Iterator[TriggerLoggerAdapter]:
        """A logger whose records carry the session, instance and ``extra``.

        The highest level logged is stored on the instance when the task
        ends. An exception leaving the block is logged (with the data
        attached by :func:`with_context`) and re-raised.
        """
        logger = logging.getLogger(f"celery_triggers.tasks.{self.task_name}")
        base = {"session_uid": self.session_uid, "instance": self.instance_name, **(extra or {})}
        adapter = TriggerLoggerAdapter(logger, base)
        try:
            yield adapter
        except TaskResolved:
            raise
        except Exception as exc:
            adapter.exception("%s: %s", type(exc).__name__, exc, context=getattr(exc, "context", None))
            raise
        finally:
            self.max_log_level = max(self.max_log_level, adapter.max_level)

    def log_metadata(self) -> dict[str, Any]:
        if self.max_log_level <= logging.NOTSET:
            return {}
        return {"log_level": self.max_log_level, "log_level_name": logging.getLevelName(self.max_log_level)}

    # -- resolving the own instance -----------------------------------------
    def retry(
        self,
        exc: BaseException | None = None,
        cooldown: float | None = None,
        replacement_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> TaskResolved:
        """Mark this instance ``replayed`` and schedule a clone that runs
        after ``cooldown`` seconds; use as ``raise context.retry(exc=...)``.

        Past the task's ``max_retries`` it raises :class:`MaxRetriesExceeded`
        (from ``exc``, named in its message) instead, and the instance ends
        ``failed``.
        """
        limit = getattr(self.task, "max_retries", None)
        if limit is not None and self.retries >= limit:
            cause = f": {type(exc).__name__}: {exc}" if exc is not None else ""
            raise MaxRetriesExceeded(
                f"{self.instance_name}: gave up after {self.retries} retries (max_retries={limit}){cause}"
            ) from exc
        meta = {**self.log_metadata(), **(metadata or {})}
        self.manager.retry_instance(self.instance_name, exc, cooldown, replacement_kwargs, meta)
        self.outcome = "replayed"
        return TaskResolved(f"{self.instance_name} retried")

    def skip(
        self, cascade: bool = False, result: Any = None, metadata: Mapping[str, Any] | None = None
    ) -> TaskResolved:
        """Mark this instance ``skipped`` (optionally cascading ``result``,
        and merging ``metadata`` into its metadata); use as
        ``raise context.skip()``."""
        meta = {**self.log_metadata(), **(metadata or {})}
        self.manager.skip_running_instance(self.instance_name, cascade, result, meta)
        self.outcome = "skipped"
        return TaskResolved(f"{self.instance_name} skipped")


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
    context = peek_context(task_id)
    if context is None:
        return None
    try:
        _current.reset(context._token)
    except (ValueError, RuntimeError):  # set in another Context: clear instead
        _current.set(None)
    return context


def peek_context(task_id: str | None) -> TaskContext | None:
    context = _current.get()
    if context is None or (task_id is not None and context.task_id not in (None, task_id)):
        return None
    return context
