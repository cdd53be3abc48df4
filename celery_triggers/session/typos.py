"""Warnings for a fire that probably does not do what its author meant.

* A fired trigger that is probably misspelt: waited for by no task of the
  app, and within two edits of one that is (``startSesion`` for
  ``startSession``). A fire of a known trigger pays one dict lookup; the
  near name is looked up once per configuration and name.
* A fire into a session for which no trigger task is configured at all,
  neither app-wide nor by the session's own configuration: typically a
  ``manage.py shell`` or a script that never imported the tasks module
  (Celery's ``autodiscover_tasks`` imports task modules in a worker, not in
  every process). Said once per app and process: nothing can be scheduled
  until the tasks are imported.

Both point at the user's line that fired: the first frame outside
celery-triggers. Where the fire runs away from that line (``afire`` calls
batched in a task of their own, ``afire_many`` settling in a worker
thread), that frame is the event loop's or the thread pool's; the
coroutine that fired names its line first (:func:`warnings_at`), and such
warnings are given there. User code run from there (a receiver, a hook, an
eager task's body) has its own lines on the stack, and its fires warn at
them."""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..core.config import Configuration
from ..core.errors import TriggersWarning

__all__ = ["CallSite", "call_site", "warn_if_misspelt", "warn_if_unconfigured", "warnings_at"]

logger = logging.getLogger("celery_triggers")


@dataclass(frozen=True)
class CallSite:
    """The user's line a fire came from, for warnings given where no line
    of the user's is on the stack."""

    filename: str
    lineno: int
    module_globals: dict[str, Any]


_site: contextvars.ContextVar[CallSite | None] = contextvars.ContextVar("celery_triggers_call_site", default=None)

#: Modules that run other code (an event loop, a thread pool, asgiref's
#: bridges): a stack whose first frame outside celery-triggers is one of
#: theirs has no line of the user's on it.
_PLUMBING = ("asyncio.", "concurrent.futures", "threading", "asgiref.")


def call_site() -> CallSite:
    """The user's line: the first frame outside celery-triggers on the
    current stack, or, when that frame is plumbing, the site this context
    was given (:func:`warnings_at`)."""
    frame, _ = _user_frame(sys._getframe(1))
    known = _site.get()
    if known is not None and _plumbing(frame):
        return known
    return CallSite(frame.f_code.co_filename, frame.f_lineno, frame.f_globals)


@contextmanager
def warnings_at(site: CallSite) -> Iterator[None]:
    """Warnings given in this context (and in the tasks and threads it
    starts, which copy it) point at ``site`` when no line of the user's is
    on their stack. User code called from there (a signal receiver, a
    hook, an eager task's body) has its own lines on the stack: its fires
    warn there."""
    token = _site.set(site)
    try:
        yield
    finally:
        _site.reset(token)


def _user_frame(frame: Any) -> tuple[Any, int]:
    """The first frame outside celery-triggers from ``frame`` up, and its
    stack level counted from ``frame`` (1: ``frame`` itself)."""
    level = 1
    while frame.f_back is not None and _ours(frame):
        frame = frame.f_back
        level += 1
    return frame, level


def _plumbing(frame: Any) -> bool:
    return str(frame.f_globals.get("__name__", "")).startswith(_PLUMBING)


def _warn(message: str) -> None:
    """Warn at the user's line: the first frame outside celery-triggers, or
    the site of this context when that frame is plumbing."""
    frame, level = _user_frame(sys._getframe(1))
    site = _site.get()
    if site is None or not _plumbing(frame):
        warnings.warn(TriggersWarning(message), stacklevel=level + 1)  # +1: this function's own frame
        return
    module_globals = site.module_globals
    warnings.warn_explicit(
        TriggersWarning(message),
        TriggersWarning,
        site.filename,
        site.lineno,
        module=module_globals.get("__name__"),
        registry=module_globals.setdefault("__warningregistry__", {}),
        module_globals=module_globals,
    )


def warn_if_misspelt(configs: Configuration, uid: str, trigger: str) -> None:
    """Warn (a :class:`TriggersWarning` and a log line) when ``trigger`` is
    probably a typo of a trigger some task waits for."""
    near = configs.near_trigger(trigger)
    if near is None:
        return
    message = (
        f"trigger {trigger!r} (fired into session {uid!r}) is waited for by no task of the app; did you mean {near!r}?"
    )
    logger.warning(message)
    _warn(message)


#: The extensions (one per app) already warned that nothing is configured.
_unconfigured: weakref.WeakSet[Any] = weakref.WeakSet()
_unconfigured_lock = threading.Lock()


def warn_if_unconfigured(extension: Any, uid: str, trigger: str) -> None:
    """Warn once per app and process that a fire found no trigger task
    configured for its session, so it scheduled nothing. Said after the
    fire's commit: a warnings filter that turns it into an error does not
    make the committed fire raise (the log line says it all the same)."""
    with _unconfigured_lock:
        if extension in _unconfigured:
            return
        _unconfigured.add(extension)
    app = getattr(getattr(extension, "app", None), "main", None)
    message = (
        f"trigger {trigger!r} fired into session {uid!r} can schedule nothing: no trigger task is configured "
        f"on app {app!r}, app-wide or by the session's own configuration (the fire is kept for tasks configured "
        "later). If your trigger tasks are declared in a module, import it before firing: Celery's "
        "autodiscover_tasks() imports task modules in a worker, not in a shell or a script"
    )
    logger.warning(message)
    try:
        _warn(message)
    except Warning:  # "error" filters: the fire is committed, it must not look failed
        pass


def _ours(frame: Any) -> bool:
    return str(frame.f_globals.get("__name__", "")).startswith("celery_triggers.")
