"""The original Triggers framework's names, so that a migration is mostly an
import change::

    from triggers.task import TaskContext, TriggerTask        # before
    from celery_triggers.compat import TaskContext, TriggerTask  # after

``CacheStorageBackend`` needs Django (``pip install 'celery-triggers[django]'``)
and is imported on first use.

An edge that defines nothing: it may import every layer, and the two edges
where some of these names live (:mod:`.testing`, :mod:`.contrib`); nothing
in the package imports it.
"""

from __future__ import annotations

from typing import Any

from .app.task_class import TriggerTask
from .core.errors import MaxRetriesExceeded
from .core.state import Instance as TaskInstance
from .producer.runners.threaded import ThreadingTaskRunner
from .session.context import TaskContext
from .session.manager import TriggerManager
from .testing.assertions import TriggerManagerTestCaseMixin

__all__ = [
    "CacheStorageBackend",  # noqa: F822 - imported on first use (needs Django)
    "MaxRetriesExceeded",
    "TaskContext",
    "TaskInstance",
    "ThreadingTaskRunner",
    "TriggerManager",
    "TriggerManagerTestCaseMixin",
    "TriggerTask",
]


def __getattr__(name: str) -> Any:
    if name == "CacheStorageBackend":
        from .contrib.django.cache import CacheStorageBackend

        return CacheStorageBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
