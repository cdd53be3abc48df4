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

Both point at the user's line that fired. Where the fire runs away from
that line (``afire`` calls batched in a task of their own, the settling of
``afire_many`` in a worker thread), the coroutine that fired names its line
first (:func:`warnings_at`), and the warnings are given there."""

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

__all__ = ["CallSite", "call_site", "names_checked", "warn_if_misspelt", "warn_if_unconfigured", "warnings_at"]

logger = logging.getLogger("celery_triggers")


@dataclass(frozen=True)
class CallSite:
    """The user's line a fire came from, for warnings given elsewhere."""

    filename: str
    lineno: int
    module_globals: dict[str, Any]
    #: The fire's trigger names were checked for typos at that line already.
    names_checked: bool = False


_site: contextvars.ContextVar[CallSite | None] = contextvars.ContextVar("celery_triggers_call_site", default=None)


def call_site(*, names_checked: bool = False) -> CallSite:
    """The first frame outside celery-triggers on the current stack (the
    user's line), or the site already set in this context."""
    known = _site.get()
    if known is not None:
        return known
    frame = sys._getframe(1)
    while frame.f_back is not None and _ours(frame):
        frame = frame.f_back
    return CallSite(frame.f_code.co_filename, frame.f_lineno, frame.f_globals, names_checked)


@contextmanager
def warnings_at(site: CallSite) -> Iterator[None]:
    """Warnings given in this context (and in the tasks and threads it
    starts, which copy it) point at ``site``."""
    token = _site.set(site)
    try:
        yield
    finally:
        _site.reset(token)


def names_checked() -> bool:
    """The fire being planned had its trigger names checked where it was called."""
    site = _site.get()
    return site is not None and site.names_checked


def _warn(message: str) -> None:
    site = _site.get()
    if site is None:
        warnings.warn(TriggersWarning(message), stacklevel=_caller_level())
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


def _caller_level() -> int:
    """The stack level, for :func:`warnings.warn` called by :func:`_warn`,
    of the first frame outside celery-triggers (the user's fire)."""
    frame = sys._getframe(2)  # the caller of _warn: stack level 2 for warnings.warn in _warn
    level = 2
    while frame.f_back is not None and _ours(frame):
        frame = frame.f_back
        level += 1
    return level
