"""Worker bootstep: wraps the app's tasks before any pool process forks,
checks the settings and the storage at start (so a bad value or URL fails
loudly and early), warns about unknown ``triggers_*`` settings, names it
in the start-up log, and closes the storage at shutdown (the last step to
stop: the leases (:mod:`.leases`) and the sweeper (:mod:`.sweeper`) are
steps of their own, started after it)."""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from ..core.errors import ConfigurationError
from ..session.extension import extension_of
from ..storage import mask_url
from .protocol import wrap_tasks
from .startup import ping_until_up

__all__ = ["METRICS_STEP_LABEL", "TriggersStep"]

logger = logging.getLogger("celery_triggers")

#: The label of the bootstep that serves ``triggers_metrics_port``
#: (``celery_triggers.observe.install(app)`` adds it).
METRICS_STEP_LABEL = "celery-triggers metrics"


class TriggersStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
    label = "celery-triggers"

    def __init__(self, parent: Any, **kwargs: Any):
        super().__init__(parent, **kwargs)
        if extension_of(parent.app) is not None:
            wrap_tasks(parent.app)  # in the parent, before prefork builds the children's tracers

    def start(self, parent: Any) -> None:
        ext = extension_of(parent.app)
        if ext is None:
            return
        for warning in ext.check_settings():  # a value that means nothing stops the worker here
            logger.warning("celery-triggers: %s", warning)
        if ext.setting("triggers_metrics_port") and not any(
            getattr(step, "label", None) == METRICS_STEP_LABEL for step in parent.app.steps["worker"]
        ):
            logger.warning(
                "celery-triggers: triggers_metrics_port is set, but nothing serves it: call "
                "celery_triggers.observe.install(app) where the app is made"
            )
        storage = ext.storage
        in_test_process = type(parent).__module__.startswith("celery.contrib.testing")  # celery_worker fixture
        reason = None if in_test_process else storage.process_local_reason()
        if reason is not None:
            raise ConfigurationError(reason)
        ping_until_up(parent.app.conf, storage)  # fail at start-up, not at the first task; retried as Celery's broker
        logger.warning(
            "celery-triggers: storage %s, default runner %r, %d trigger task(s) configured",
            mask_url(storage.url),
            ext.default_runner,
            len(ext.configs),
        )

    def stop(self, parent: Any) -> None:
        ext = extension_of(parent.app)
        if ext is not None:
            ext.reset_storage()

    def terminate(self, parent: Any) -> None:
        """A cold shutdown (or Celery's test worker) stops it too."""
        self.stop(parent)
