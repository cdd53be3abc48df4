"""The worker protocol: how a Celery message runs one trigger-task instance.

Every task of an app with the extension has its ``run`` wrapped (at
``@trigger_task``, when the app is finalized, and when a worker builds its
blueprint, before any pool process forks). A message without
celery-triggers headers is a plain call of the task (``task.delay(...)``):
the body runs untouched, whatever its kwargs, and no session changes. A
message whose headers are malformed (one without the others, not strings,
too long, control characters) runs nothing: one ERROR line, acknowledged
(``Ignore``). A message with well-formed headers goes through three steps:

1. **Start**, one atomic storage step: the instance moves ``scheduled`` ->
   ``running`` only if the message's task id is the instance's current
   dispatch token (``triggers_track_started=False``: only checked). The
   kwargs the body receives come from storage. A message for an unknown,
   resolved or re-dispatched instance, one with another token, or one that
   names a storage alias this worker does not trust runs nothing: it is
   acknowledged (``Ignore``) with one warning line. Storage unreachable
   (``StorageUnavailable``): the body does not run, the message is retried
   with back-off (``triggers_start_retries``), then left to ``recover``.
   Any other storage error (a refused command, a malformed storage URL): the
   body does not run, one error line, no retry, left to ``recover``.
2. **Body**, with ``trigger_kwargs`` / ``context`` injected when its
   signature takes them, and ``current_context()`` set.
3. **Finish** (result, status, cascade) or **fail**, one atomic step,
   retried with back-off for ``triggers_finish_timeout`` seconds while
   storage is unreachable (only then). If it still fails, the body's result
   goes to Celery's result backend as usual and ``recover`` resolves the
   instance.

Bodies run at least once; instances and cascades happen exactly once.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore, Reject, Retry

from ..core.data import (
    MAX_KWARGS_BYTES,
    escape_text,
    normalize_kwargs,
    shown,
)
from ..core.engine import task_kwargs
from ..core.errors import (
    CorruptSession,
    DispatchError,
    IllegalTransition,
    InvalidKwargs,
    StaleDispatch,
    StorageError,
    StorageUnavailable,
    UnknownInstance,
    UnknownStorage,
    UnknownTask,
)
from ..core.retry import call_with_backoff
from ..producer.runners.base import accepted_keywords
from ..session.context import TaskContext, TaskResolved, pop_context, push_context
from ..session.extension import extension_of
from ..session.hooks import around
from ..session.manager import TriggerManager, error_metadata
from .epochs import check_epoch
from .headers import MessageIds, trigger_headers
from .leases import keeper_of

__all__ = ["execute", "trigger_headers", "wrap_task", "wrap_tasks"]  # trigger_headers: see .headers

logger = logging.getLogger("celery_triggers")

#: Attribute set on a wrapped ``run`` (wrapping is idempotent).
_WRAPPED = "__celery_triggers__"
#: Celery's own control flow: the instance keeps its status.
_CELERY_CONTROL = (Retry, Ignore, Reject)


def wrap_task(task: Task) -> None:
    """Route ``task``'s trigger messages through the protocol (idempotent)."""
    task = getattr(task, "_get_current_object", lambda: task)()  # a proxy before finalize
    original = task.run
    if getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        return execute(task, original, args, kwargs)

    task.run = mark_wrapped(run)


def execute(task: Task, body: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run one message of ``task`` through the protocol (start, ``body``,
    finish); a message without celery-triggers headers runs ``body`` as is.
    For task classes that own their ``run`` (:class:`TriggerTask`)."""
    try:
        ids = trigger_headers(task.request)
    except ValueError as exc:
        logger.error(
            "celery-triggers: refused message %s of task %s: malformed trigger headers: %s (its body did not run)",
            shown(task.request.id),
            task.name,
            _text(exc),
        )
        raise _ignore(exc) from None
    if ids is None:
        return body(*args, **kwargs)
    execution = _Execution(task, ids)
    hooks = execution.ext.hooks if execution.ext is not None else ()
    if not hooks:
        return execution.run(body, args, kwargs)
    with around([hook.running(ids.uid, ids.name, task) for hook in hooks]):  # e.g. a tracing span
        return execution.run(body, args, kwargs)


def mark_wrapped(run: Callable[..., Any]) -> Callable[..., Any]:
    """Declare that ``run`` already goes through :func:`execute`."""
    setattr(run, _WRAPPED, True)
    return run


def wrap_tasks(sender: Celery | None = None, **_: Any) -> None:
    """Wrap every task of an app (Celery's ``on_after_finalize`` receiver)."""
    if sender is None:
        return
    for name, task in list(sender.tasks.items()):
        if not name.startswith("celery."):
            wrap_task(task)


def _ignore(reason: object) -> BaseException:
    """Celery's ``Ignore``: the message is acknowledged, no state recorded."""
    ignore: BaseException = Ignore(str(reason))
    return ignore


def _text(value: object) -> str:
    """``value`` for a log line: one line, whatever it holds (a message's
    task id, an error naming stored data)."""
    return escape_text(str(value))


def _hostname(task: Task) -> str:
    return str(getattr(task.request, "hostname", None) or socket.gethostname())


class _Execution:
    """One message of one instance, from start to finish."""

    def __init__(self, task: Task, ids: MessageIds):
        self.task = task
        self.ids = ids
        self.uid, self.name, self.alias = ids.uid, ids.name, ids.alias
        self.token = str(task.request.id)
        #: The token as log lines show it (a message's task id is anyone's text).
        self.shown_token = shown(self.token)
        self.ext = extension_of(task.app)

    def _skip(self, reason: object) -> BaseException:
        logger.warning(
            "celery-triggers: not running %s of session %r (task %s, message %s): %s",
            self.name,
            self.uid,
            self.task.name,
            self.shown_token,
            _text(reason),
        )
        return _ignore(reason)

    def _unknown(self, exc: UnknownInstance) -> BaseException:
        """An instance its storage does not hold: a stale or forged message
        (a warning), unless the message was sent when the storage held
        another epoch: then the storage lost data (an error, recorded for
        ``recover --dry-run``)."""
        assert self.ext is not None
        lost = check_epoch(self.ext.storage_for(self.alias), self.ids, self.shown_token) if self.ids.epoch else False
        return _ignore(exc) if lost else self._skip(exc)

    # -- step 1 --------------------------------------------------------------
    def _start(self) -> tuple[TriggerManager, TaskContext]:
        if self.ext is None:
            raise self._skip(f"celery-triggers is not installed on app {self.task.app.main!r}")
        try:
            manager = self.ext.session(self.uid, self.alias)
            keeper = keeper_of(self.task.app)  # leases kept by this worker: the start records the lease
            lease = {"lease": keeper.interval} if keeper is not None else {}
            instance, config = manager.start_instance(
                self.name,
                self.token,
                track=self.ext.track_started,
                hostname=_hostname(self.task),
                celery_retries=self.task.request.retries or 0,
                **lease,
            )
        except UnknownInstance as exc:
            raise self._unknown(exc) from None
        except (UnknownStorage, UnknownTask, IllegalTransition, StaleDispatch) as exc:
            raise self._skip(exc) from None
        except CorruptSession as exc:
            logger.error("celery-triggers: %s (message %s not run)", _text(exc), self.shown_token)
            raise _ignore(exc) from None
        except StorageUnavailable as exc:
            raise self._retry_start(exc) from None
        except StorageError as exc:  # refused, not unreachable: a retry would fail the same way
            logger.error(
                "celery-triggers: could not start %s of session %r (message %s), not retried: %s; it stays "
                "scheduled until `celery triggers recover` re-sends it",
                self.name,
                self.uid,
                self.shown_token,
                _text(exc),
            )
            raise _ignore(exc) from None
        context = TaskContext(
            self.uid,
            self.name,
            task_kwargs(config, instance),
            manager,
            task_id=self.token,
            task=self.task,
            retries=int(instance.metadata.get("retries", 0)),
        )
        return manager, context

    def _retry_start(self, exc: StorageUnavailable) -> BaseException:
        """Storage unreachable at the start: run nothing, try again later."""
        retries = int(self.task.request.retries or 0)
        limit = self.ext.start_retries if self.ext is not None else 0
        if self.task.request.is_eager or retries >= limit:
            logger.error(
                "celery-triggers: %s of session %r not started after %d retries (%s); it stays scheduled "
                "until `celery triggers recover` re-sends it",
                self.name,
                self.uid,
                retries,
                _text(exc),
            )
            return _ignore(exc)
        countdown = min(2.0**retries, 30.0)
        logger.warning(
            "celery-triggers: storage unreachable at the start of %s of session %r (%s); retry %d/%d in %.0f s",
            self.name,
            self.uid,
            _text(exc),
            retries + 1,
            limit,
            countdown,
        )
        # Celery's own retry, whatever the task class made of ``retry`` (TriggerTask's serves two forms).
        retry: object = Task.retry(self.task, exc=exc, countdown=countdown, max_retries=limit, throw=False)
        return retry if isinstance(retry, BaseException) else _ignore(exc)

    # -- steps 2 and 3 -------------------------------------------------------
    def run(self, body: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager, context = self._start()
        call_kwargs = dict(kwargs)
        accepted = accepted_keywords(self.task)
        if "trigger_kwargs" in accepted:
            call_kwargs["trigger_kwargs"] = context.trigger_kwargs
        if "context" in accepted:
            call_kwargs["context"] = context
        push_context(context)
        try:
            try:
                result = body(*args, **call_kwargs)
            except (TaskResolved, *_CELERY_CONTROL):
                raise  # resolved by the task itself, or Celery retries/requeues it
            except Exception as exc:
                if context.outcome is None:
                    self._fail(manager, context, error_metadata(exc))
                raise
            if context.outcome is None:
                self._finish(manager, context, result)
            return result
        finally:
            pop_context(self.token)

    def _finish(self, manager: TriggerManager, context: TaskContext, result: Any) -> None:
        try:
            limit = self.ext.max_kwargs_bytes if self.ext is not None else MAX_KWARGS_BYTES
            stored = normalize_kwargs({"result": result}, what=f"result of {self.name}", max_bytes=limit)["result"]
        except InvalidKwargs as exc:
            logger.error("celery-triggers: %s", _text(exc))
            self._fail(manager, context, error_metadata(exc))
            return
        self._durably("finish", lambda: manager.finish_instance(self.name, self.token, stored, context.log_metadata()))

    def _fail(self, manager: TriggerManager, context: TaskContext, error: dict[str, Any]) -> None:
        self._durably("fail", lambda: manager.fail_instance(self.name, self.token, {**error, **context.log_metadata()}))

    def _durably(self, what: str, step: Callable[[], Any]) -> None:
        """Run a finish/fail step, retrying while storage is unreachable (and
        only then: a refused step would fail the same way)."""
        timeout = self.ext.finish_timeout if self.ext is not None else 0.0
        try:
            call_with_backoff(step, retry_on=StorageUnavailable, timeout=timeout, on_retry=self._log_retry)
        except DispatchError as exc:  # committed; the cascade's messages were refused
            logger.error(
                "celery-triggers: %s of session %r: %s (`celery triggers recover` re-sends them)",
                self.name,
                self.uid,
                _text(exc),
            )
        except (IllegalTransition, StaleDispatch, UnknownInstance) as exc:
            logger.warning("celery-triggers: %s of session %r not recorded: %s", self.name, self.uid, _text(exc))
        except StorageUnavailable as exc:
            logger.error(
                "celery-triggers: could not %s %s of session %r within %.0f s (%s); the instance stays running "
                "until `celery triggers recover` resolves it (from Celery's result backend when one is configured)",
                what,
                self.name,
                self.uid,
                timeout,
                _text(exc),
            )
        except StorageError as exc:  # refused, not unreachable: no retries
            logger.error(
                "celery-triggers: could not %s %s of session %r, not retried: %s; the instance stays running until "
                "`celery triggers recover` resolves it (from Celery's result backend when one is configured)",
                what,
                self.name,
                self.uid,
                _text(exc),
            )

    def _log_retry(self, exc: BaseException, attempt: int, delay: float) -> None:
        logger.warning(
            "celery-triggers: storage unreachable finishing %s of session %r (%s); attempt %d, next in %.1f s",
            self.name,
            self.uid,
            _text(exc),
            attempt,
            delay,
        )
