"""Typed errors raised by celery-triggers.

Every error names what was wrong (the task, directive, trigger, session or
instance at fault) so that a user reading a log line knows what to fix.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "CorruptSession",
    "DispatchError",
    "IllegalTransition",
    "InvalidKwargs",
    "InvalidSession",
    "NotInTriggerTask",
    "StorageError",
    "TriggersError",
    "UnknownInstance",
    "UnknownRunner",
    "UnknownTask",
]


class TriggersError(Exception):
    """Base class of every error raised by celery-triggers."""


class ConfigurationError(TriggersError, ValueError):
    """A task configuration is malformed.

    ``task`` and ``directive`` name the culprit when known.
    """

    def __init__(self, message: str, *, task: str | None = None, directive: str | None = None):
        prefix = ""
        if task is not None:
            prefix = f"trigger task {task!r}"
            if directive is not None:
                prefix += f", directive {directive!r}"
            prefix += ": "
        super().__init__(prefix + message)
        self.task = task
        self.directive = directive


class InvalidKwargs(TriggersError, TypeError):
    """Trigger kwargs (or a result) are not a JSON-serializable mapping."""


class InvalidSession(TriggersError, ValueError):
    """A session UID is empty or not a string."""


class UnknownInstance(TriggersError, KeyError):
    """No instance of that name exists in the session."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class UnknownTask(TriggersError, KeyError):
    """No trigger task of that name is configured."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IllegalTransition(TriggersError, ValueError):
    """The requested status change is not allowed from the instance's status."""


class StorageError(TriggersError, RuntimeError):
    """The storage backend could not be reached or refused the operation."""


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


class UnknownRunner(TriggersError, LookupError):
    """No runner is registered under that name."""


class NotInTriggerTask(TriggersError, RuntimeError):
    """``current_context()`` was called outside a running trigger task."""
