"""``TriggerTask``: class-based trigger tasks, as in the original framework.

    class ImportSubject(TriggerTask):
        def _run(self, context):
            data = context.filter_kwargs({"firstPageReceived": {...}})
            return {"subjectId": 42}          # cascades as t_importSubject's kwargs

    app.register_task(ImportSubject())          # or @app.task(base=TriggerTask)

The same worker protocol runs it as a decorated function task (one
implementation): ``run`` hands ``_run`` to :func:`protocol.execute`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Task

from ..context import TaskContext, TaskResolved, current_context
from .protocol import execute, mark_wrapped

__all__ = ["TriggerTask"]


class TriggerTask(Task):  # type: ignore[misc]  # celery is untyped
    """A Celery task base whose subclasses implement ``_run(self, context)``.

    Inside ``_run``: ``self.request.retries`` counts the replays made by
    ``self.retry()`` so far; ``raise self.retry(...)`` replays the instance
    (``MaxRetriesExceeded`` past ``max_retries``); ``raise self.skip(...)``
    marks it ``skipped``. Celery's own retry is not used by these tasks.
    """

    abstract = True  # the original's spelling; Celery 5 registers only what you register

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """``@app.task(base=TriggerTask)`` makes a subclass whose ``run`` is
        the decorated function: route it through the protocol too."""
        super().__init_subclass__(**kwargs)
        body = cls.__dict__.get("run")
        if body is not None and not getattr(body, "__celery_triggers__", False):
            function = body.__func__ if isinstance(body, staticmethod) else body
            bound = not isinstance(body, staticmethod)

            @mark_wrapped
            def run(self: TriggerTask, *args: Any, **kwargs: Any) -> Any:
                call = function.__get__(self) if bound else function
                return execute(self, call, args, kwargs)

            run.__wrapped__ = function  # type: ignore[attr-defined]  # its signature decides what is injected
            cls.run = run  # type: ignore[method-assign]  # the decorated function, through the protocol

    def _run(self, context: TaskContext) -> Any:
        """The task's body: return the kwargs to cascade with (a mapping)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _run(self, context)")

    @mark_wrapped
    def run(self, *args: Any, **kwargs: Any) -> Any:
        return execute(self, self._body, args, kwargs)

    def _body(self, *_: Any, **__: Any) -> Any:
        context = current_context()
        self.request.retries = context.retries
        return self._run(context)

    def retry(  # the original framework's signature, not Celery's
        self,
        exc: BaseException | None = None,
        metadata: Mapping[str, Any] | None = None,
        replacement_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        cooldown: float | None = None,
    ) -> TaskResolved:
        """Replay this instance (it becomes ``replayed``; a clone runs after
        ``cooldown`` seconds, with ``replacement_kwargs`` if given); use as
        ``raise self.retry(...)``."""
        return current_context().retry(
            exc=exc, cooldown=cooldown, replacement_kwargs=replacement_kwargs, metadata=metadata
        )

    def skip(self, metadata: Mapping[str, Any] | None = None) -> TaskResolved:
        """Mark this instance ``skipped``, its trigger kwargs copied into its
        metadata (``kwargs``) with ``metadata``; use as ``raise self.skip()``."""
        context = current_context()
        return context.skip(metadata={"kwargs": context.trigger_kwargs, **(metadata or {})})
