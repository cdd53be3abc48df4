"""Worker bootstep: opens the storage at start (so a bad URL fails loudly and
early), names it in the start-up log, and closes it at shutdown."""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

__all__ = ["TriggersStep"]

logger = logging.getLogger("celery_triggers")


class TriggersStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
    label = "celery-triggers"

    def __init__(self, parent: Any, **kwargs: Any):
        super().__init__(parent, **kwargs)

    def start(self, parent: Any) -> None:
        ext = parent.app.__dict__.get("triggers")
        if ext is None:
            return
        from .extension import SETTINGS

        for key in sorted(k for k in parent.app.conf.keys() if str(k).lower().startswith("triggers_")):
            if key not in SETTINGS:
                logger.warning("celery-triggers: unknown setting %r (known: %s)", key, ", ".join(sorted(SETTINGS)))
        storage = ext.storage
        storage.sessions()  # touch it: fail at start-up, not at the first task
        logger.warning(
            "celery-triggers: storage %s, default runner %r, %d trigger task(s) configured",
            storage.url,
            ext.default_runner,
            len(ext.configs),
        )

    def stop(self, parent: Any) -> None:
        ext = parent.app.__dict__.get("triggers")
        if ext is not None:
            ext.reset_storage()
