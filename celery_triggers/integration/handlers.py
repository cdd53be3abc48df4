"""Celery signal handlers that move instances through their statuses.

``task_prerun`` -> running (and the task context), ``task_success`` ->
finished + cascade, ``task_failure`` -> failed. They act only on messages
carrying celery-triggers headers. Celery swallows errors raised by signal
handlers; ours log them with the session and instance instead, so a storage
outage is visible in the worker log, and never break the task.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Task
from celery.signals import task_failure, task_postrun, task_prerun, task_success

from .._json import normalize_kwargs
from ..context import TaskContext, peek_context, pop_context, push_context
from ..dispatch import HEADER_INSTANCE, HEADER_SESSION, HEADER_STORAGE
from ..engine import task_kwargs
from ..errors import IllegalTransition, InvalidKwargs
from ..manager import error_metadata
from ..runners.base import accepted_keywords
from .extension import Triggers

__all__ = ["connect_handlers", "trigger_headers"]

logger = logging.getLogger("celery_triggers")

_connected = False
_connect_lock = threading.Lock()


def trigger_headers(request: Any) -> tuple[str, str, str | None] | None:
    """(session UID, instance name, storage URL or None) of a task request,
    if it carries them.

    On a worker, custom message headers become request attributes (and
    ``request.headers``); in ``Task.apply`` they stay in ``request.headers``.
    """
    headers = getattr(request, "headers", None) or {}
    uid = getattr(request, HEADER_SESSION, None) or headers.get(HEADER_SESSION)
    name = getattr(request, HEADER_INSTANCE, None) or headers.get(HEADER_INSTANCE)
    storage = getattr(request, HEADER_STORAGE, None) or headers.get(HEADER_STORAGE)
    if isinstance(uid, str) and isinstance(name, str):
        return uid, name, storage if isinstance(storage, str) else None
    return None


def _extension(task: Task) -> Triggers | None:
    ext = task.app.__dict__.get("triggers")
    return ext if isinstance(ext, Triggers) else None


def on_prerun(
    sender: Task | None = None,
    task_id: str | None = None,
    task: Task | None = None,
    kwargs: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    task = task or sender
    if task is None:
        return
    ids = trigger_headers(task.request)
    ext = _extension(task)
    if ids is None or ext is None:
        return
    uid, name, storage_url = ids
    try:
        manager = ext.session(uid, storage_url)
        instance, config = manager._start(
            name, task_id=task_id, hostname=task.request.hostname, celery_retries=task.request.retries or 0
        )
        received = task_kwargs(config, instance) if config else dict(instance.kwargs)
    except IllegalTransition as exc:  # e.g. redelivered (acks_late) after it finished
        logger.warning(
            "celery-triggers: %s of session %r is not scheduled (%s); the task runs as Celery delivered it, "
            "but its instance and cascade are not repeated",
            name,
            uid,
            exc,
        )
        return
    except Exception:
        logger.exception("celery-triggers: could not mark %s of session %r running", name, uid)
        return
    context = TaskContext(
        uid, name, received, manager, task_id=task_id, task=task, retries=int(instance.metadata.get("retries", 0))
    )
    push_context(context)
    if kwargs is not None:
        accepted = accepted_keywords(task)
        if "trigger_kwargs" in accepted and "trigger_kwargs" not in kwargs:
            kwargs["trigger_kwargs"] = received
        if "context" in accepted:
            kwargs["context"] = context


def on_success(sender: Task | None = None, result: Any = None, **_: Any) -> None:
    if sender is None:
        return
    context = peek_context(getattr(sender.request, "id", None))
    if context is None or context.outcome is not None:
        return
    try:
        try:
            stored = normalize_kwargs({"result": result}, what=f"result of {context.instance_name}")["result"]
        except InvalidKwargs as exc:
            logger.error("celery-triggers: %s", exc)
            context.manager._fail(context.instance_name, {**error_metadata(exc), **context.log_metadata()})
            return
        context.manager._finish(context.instance_name, stored, context.log_metadata())
    except Exception:
        logger.exception(
            "celery-triggers: could not finish %s of session %r", context.instance_name, context.session_uid
        )


def on_failure(
    sender: Task | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    if sender is None:
        return
    context = peek_context(task_id)
    if context is None or context.outcome is not None:
        return
    exc = exception if exception is not None else RuntimeError("unknown failure")
    tb = getattr(einfo, "traceback", None)
    try:
        context.manager._fail(context.instance_name, {**error_metadata(exc, tb), **context.log_metadata()})
    except Exception:
        logger.exception(
            "celery-triggers: could not mark %s of session %r failed", context.instance_name, context.session_uid
        )


def on_postrun(sender: Task | None = None, task_id: str | None = None, **_: Any) -> None:
    pop_context(task_id)


def connect_handlers() -> None:
    """Connect the handlers once per process (idempotent)."""
    global _connected
    with _connect_lock:
        if _connected:
            return
        task_prerun.connect(on_prerun, weak=False, dispatch_uid="celery_triggers.prerun")
        task_success.connect(on_success, weak=False, dispatch_uid="celery_triggers.success")
        task_failure.connect(on_failure, weak=False, dispatch_uid="celery_triggers.failure")
        task_postrun.connect(on_postrun, weak=False, dispatch_uid="celery_triggers.postrun")
        _connected = True
