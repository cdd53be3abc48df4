"""A warning for a fired trigger that is probably misspelt: waited for by
no task of the app, and within two edits of one that is (``startSesion``
for ``startSession``). A fire of a known trigger pays one dict lookup; the
near name is looked up once per configuration and name."""

from __future__ import annotations

import logging
import sys
import warnings

from ..core.config import Configuration
from ..core.errors import TriggersWarning

__all__ = ["warn_if_misspelt"]

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


def _caller_level() -> int:
    """The stack level of the first frame outside celery-triggers (the user's fire)."""
    frame = sys._getframe(2)  # the caller of warn_if_misspelt
    level = 2
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("celery_triggers."):
        frame = frame.f_back
        level += 1
    return level
