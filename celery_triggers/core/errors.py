"""Typed errors raised by celery-triggers.

Every error names what was wrong (the task, directive, trigger, session or
instance at fault) so that a user reading a log line knows what to fix.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "Conflict",
    "CorruptSession",
    "DispatchError",
    "IllegalTransition",
    "InvalidKey",
    "InvalidKwargs",
    "InvalidName",
    "InvalidSession",
    "InvalidStatus",
    "InvalidStorageURL",
    "KwargsValidationError",
    "MaxRetriesExceeded",
    "NotInTriggerTask",
    "StaleDispatch",
    "StorageError",
    "StorageUnavailable",
    "TriggersError",
    "TriggersWarning",
    "UnknownInstance",
    "UnknownRunner",
    "UnknownStorage",
    "UnknownTask",
    "WaitTimeout",
]


class TriggersError(Exception):
    """Base class of every error raised by celery-triggers."""


class TriggersWarning(UserWarning):
    """Something celery-triggers accepted but that is probably a mistake:
    a fired trigger no task waits for, one edit from one a task does; a fire
    in a process where no trigger task is configured (its tasks module never
    imported), said once per app."""


class ConfigurationError(TriggersError, ValueError):
    """A task configuration or a ``triggers_*`` setting is malformed.

    ``task`` and ``directive``, or ``setting``, name the culprit when known.
    """

    def __init__(
        self, message: str, *, task: str | None = None, directive: str | None = None, setting: str | None = None
    ):
        prefix = ""
        if task is not None:
            prefix = f"trigger task {task!r}"
            if directive is not None:
                prefix += f", directive {directive!r}"
            prefix += ": "
        elif setting is not None:
            prefix = f"setting {setting}: "
        super().__init__(prefix + message)
        self.message = message
        self.task = task
        self.directive = directive
        self.setting = setting

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_configuration_error, (self.message, self.task, self.directive, self.setting)


def _rebuild_configuration_error(
    message: str, task: str | None, directive: str | None, setting: str | None = None
) -> ConfigurationError:
    return ConfigurationError(message, task=task, directive=directive, setting=setting)


class InvalidKwargs(TriggersError, TypeError):
    """Trigger kwargs (or a result) are not a JSON-serializable mapping."""


class InvalidName(TriggersError, ValueError):
    """A trigger name is empty, only whitespace, too long or not valid Unicode."""


class InvalidSession(TriggersError, ValueError):
    """A session UID is empty, only whitespace, too long or not valid Unicode."""


class InvalidKey(TriggersError, ValueError):
    """An idempotency key (``fire(..., key=...)``) is not a non-empty string
    of at most ``MAX_KEY_LENGTH`` characters, or holds a control character."""


class UnknownInstance(TriggersError, KeyError):
    """No instance of that name exists in the session."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class WaitTimeout(TriggersError, TimeoutError):
    """``session.wait`` ran out of time; the message lists every instance
    not yet resolved, with its status and for how long; ``instances`` holds
    them all as last read."""

    def __init__(self, message: str, instances: dict[str, Any] | None = None):
        super().__init__(message)
        self.instances = instances or {}


class InvalidStatus(TriggersError, ValueError):
    """A status name that is not one of the instance statuses."""


class UnknownTask(TriggersError, KeyError):
    """No trigger task of that name is configured."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IllegalTransition(TriggersError, ValueError):
    """The requested status change is not allowed from the instance's status."""


class StorageError(TriggersError, RuntimeError):
    """The storage backend could not be reached or refused the operation."""


class InvalidStorageURL(ConfigurationError, StorageError):
    """A storage URL is malformed or names something unusable (its scheme,
    path, database, port or an option); the message masks any password."""


class StorageUnavailable(StorageError):
    """The storage could not be reached (connection refused, timed out).

    Transient: the worker protocol retries the operation with back-off."""


class Conflict(StorageError):
    """Concurrent writers to one session kept winning: an optimistic commit
    was refused (inside storage, the operation re-runs at once), and, raised
    out of an operation, it was refused on every one of its attempts."""

    #: A backend's fresh read of the session, for the re-run to start from.
    fresh: Any = None


class CorruptSession(StorageError):
    """Stored data of a session cannot be decoded."""


class DispatchError(TriggersError, RuntimeError):
    """The broker refused a message; the instance stays ``scheduled``.

    ``instances`` lists the names of the instances that were not sent; they
    can be re-dispatched later.
    """

    def __init__(self, message: str, instances: list[str]):
        super().__init__(message)
        self.instances = instances
        #: What the operation committed before its messages were refused
        #: (set by the manager; None in a pickled copy).
        self.changes: Any = None

    def __reduce__(self) -> tuple[type, tuple[str, list[str]]]:
        return type(self), (str(self), self.instances)


class StaleDispatch(TriggersError, ValueError):
    """A message is not the instance's current dispatch: its task id (the
    dispatch token) differs from the one storage recorded, e.g. the original
    of a re-dispatched instance, or a forged message. It runs nothing."""


class UnknownRunner(TriggersError, LookupError):
    """No runner is registered under that name."""


class UnknownStorage(TriggersError, LookupError):
    """A message names a storage alias this process is not configured to
    trust (``triggers_storages``)."""


class NotInTriggerTask(TriggersError, RuntimeError):
    """``current_context()`` was called outside a running trigger task."""


class KwargsValidationError(TriggersError, ValueError):
    """Trigger kwargs failed ``context.validate_kwargs``.

    ``errors`` lists every problem as ``(trigger, path, message)``.
    """

    def __init__(self, instance: str, errors: list[tuple[str, str, str]]):
        lines = [f"{trigger}{('.' + path) if path else ''}: {message}" for trigger, path, message in errors]
        super().__init__(f"{instance}: invalid trigger kwargs ({len(errors)}): " + "; ".join(lines))
        self.instance = instance
        self.errors = errors

    def __reduce__(self) -> tuple[type, tuple[str, list[tuple[str, str, str]]]]:
        # Celery re-creates exceptions from pickle; keep the type and fields.
        return type(self), (self.instance, self.errors)


class MaxRetriesExceeded(TriggersError, RuntimeError):
    """``context.retry()`` was called more often than the task's ``max_retries``;
    the message names the last error (``t_x#2: gave up after 2 retries
    (max_retries=2): ConnectionError: upstream``)."""
