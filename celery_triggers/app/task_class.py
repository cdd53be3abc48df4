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

from ..session.context import TaskContext, TaskResolved, current_context, peek_context
from ..worker.protocol import execute, mark_wrapped

__all__ = ["TriggerTask"]

#: Request attribute keeping Celery's retry count while ``_run`` sees the replays'.
_CELERY_RETRIES = "triggers_celery_retries"


class TriggerTask(Task):  # type: ignore[misc]  # celery is untyped
    """A Celery task base whose subclasses implement ``_run(self, context)``.

    Inside ``_run``: ``self.request.retries`` counts the replays made by
    ``self.retry()`` so far; ``raise self.retry(exc=..., cooldown=...)``
    replays the instance (``MaxRetriesExceeded`` past ``max_retries``);
    ``raise self.skip(...)`` marks it ``skipped``. ``retry`` keeps Celery's
    signature: with Celery's own arguments (``countdown=``, ...) it is
    Celery's retry (see :meth:`retry`).
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
        setattr(self.request, _CELERY_RETRIES, self.request.retries)  # for a Celery-form retry()
        self.request.retries = context.retries
        return self._run(context)

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        replacement_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        cooldown: float | None = None,
        **options: Any,
    ) -> Any:
        """Celery's ``Task.retry`` signature, serving two forms:

        - **The original framework's** (``raise self.retry(exc=e,
          cooldown=10)``, and ``metadata=``, ``replacement_kwargs=``, the
          exception as the first argument, or no argument): inside a
          running instance, the instance becomes ``replayed`` and a clone
          runs after ``cooldown`` seconds (``MaxRetriesExceeded`` past
          ``max_retries``). It returns the exception to raise; it raises
          nothing itself.
        - **Celery's own** (any of ``args``, ``kwargs``, ``eta``,
          ``countdown``, ``max_retries``, ``throw=False`` or other send
          options, or no running instance): :meth:`celery.Task.retry`, which
          re-sends the same message; the instance stays one instance.

        Mixing the two forms raises ``TypeError``.
        """
        if isinstance(args, BaseException) and exc is None:  # self.retry(e): the original's positional exc
            args, exc = None, args
        original = metadata is not None or replacement_kwargs is not None or cooldown is not None
        celery = any(v is not None for v in (args, kwargs, eta, countdown, max_retries)) or not throw or options
        if original and celery:
            raise TypeError(
                f"{self.name}.retry(): cooldown/metadata/replacement_kwargs (replay the instance) "
                "cannot be mixed with Celery's retry arguments (args, kwargs, eta, countdown, max_retries, throw)"
            )
        context = peek_context(self.request.id)
        if original or (not celery and context is not None):
            target = context if context is not None else current_context()  # outside an instance: NotInTriggerTask
            return target.retry(exc=exc, cooldown=cooldown, replacement_kwargs=replacement_kwargs, metadata=metadata)
        replays = self.request.retries
        celery_retries = getattr(self.request, _CELERY_RETRIES, None)
        if celery_retries is not None:  # ``_run`` sees the replays; Celery counts its own re-sends
            self.request.retries = celery_retries
        try:
            return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)
        finally:
            self.request.retries = replays

    def skip(self, metadata: Mapping[str, Any] | None = None) -> TaskResolved:
        """Mark this instance ``skipped``, its trigger kwargs copied into its
        metadata (``kwargs``) with ``metadata``; use as ``raise self.skip()``."""
        context = current_context()
        return context.skip(metadata={"kwargs": context.trigger_kwargs, **(metadata or {})})
