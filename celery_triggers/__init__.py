"""celery-triggers: run Celery tasks when combinations of events have happened.

Public API; everything else is an implementation detail.
"""

from __future__ import annotations

from .app.decorator import trigger_task
from .app.extension import Triggers, default_storage_url
from .app.task_class import TriggerTask
from .core.config import TaskConfig
from .core.errors import (
    ConfigurationError,
    Conflict,
    CorruptSession,
    DispatchError,
    IllegalTransition,
    InvalidKey,
    InvalidKwargs,
    InvalidName,
    InvalidSession,
    InvalidStatus,
    InvalidStorageURL,
    KwargsValidationError,
    MaxRetriesExceeded,
    NotInTriggerTask,
    StaleDispatch,
    StorageError,
    StorageUnavailable,
    TriggersError,
    TriggersWarning,
    UnknownInstance,
    UnknownRunner,
    UnknownStorage,
    UnknownTask,
    WaitTimeout,
)
from .core.state import Instance, Status
from .producer.runners import TaskRunner
from .session.context import TaskContext, TaskResolved, current_context
from .session.hooks import Hooks
from .session.logs import with_context
from .session.manager import TriggerManager
from .session.signals import instance_status_changed, trigger_fired
from .storage import SessionStorage, StorageBackend, resolve_storage

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "Conflict",
    "CorruptSession",
    "DispatchError",
    "Hooks",
    "IllegalTransition",
    "Instance",
    "InvalidKey",
    "InvalidKwargs",
    "InvalidName",
    "InvalidSession",
    "InvalidStatus",
    "InvalidStorageURL",
    "KwargsValidationError",
    "MaxRetriesExceeded",
    "NotInTriggerTask",
    "SessionStorage",
    "StaleDispatch",
    "Status",
    "StorageBackend",
    "StorageError",
    "StorageUnavailable",
    "TaskConfig",
    "TaskContext",
    "TaskResolved",
    "TaskRunner",
    "TriggerManager",
    "TriggerTask",
    "Triggers",
    "TriggersError",
    "TriggersWarning",
    "UnknownInstance",
    "UnknownRunner",
    "UnknownStorage",
    "UnknownTask",
    "WaitTimeout",
    "current_context",
    "default_storage_url",
    "instance_status_changed",
    "resolve_storage",
    "trigger_fired",
    "trigger_task",
    "with_context",
]
