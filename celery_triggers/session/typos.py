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
  until the tasks are imported."""

from __future__ import annotations

import logging
import sys
import threading
import warnings
import weakref
from typing import Any

from ..core.config import Configuration
from ..core.errors import TriggersWarning

__all__ = ["warn_if_misspelt", "warn_if_unconfigured"]

logger = logging.getLogger("celery_triggers")


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
    warnings.warn(TriggersWarning(message), stacklevel=_caller_level())


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
        warnings.warn(TriggersWarning(message), stacklevel=_caller_level())
    except Warning:  # "error" filters: the fire is committed, it must not look failed
        pass


def _caller_level() -> int:
    """The stack level of the first frame outside celery-triggers (the user's fire)."""
    frame = sys._getframe(2)  # the caller of warn_if_misspelt
    level = 2
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("celery_triggers."):
        frame = frame.f_back
        level += 1
    return level
