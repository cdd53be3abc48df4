"""Logging with context for trigger tasks.

``context.get_logger_context(extra)`` yields a standard
:class:`logging.LoggerAdapter` whose records carry the session, the instance,
``extra`` and a per-call ``context=`` dict, and which tracks the highest
level logged (stored on the instance as ``log_level`` / ``log_level_name``
when the task ends). :func:`with_context` attaches data to an exception so
that the adapter logs it when the exception leaves the block.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any, TypeVar

__all__ = ["TriggerLoggerAdapter", "with_context"]

E = TypeVar("E", bound=BaseException)


def with_context(exc: E, context: Mapping[str, Any]) -> E:
    """Attach ``context`` to ``exc`` (merged with any already attached);
    return ``exc`` so it reads ``raise with_context(ValueError(...), {...})``."""
    merged = {**getattr(exc, "context", {}), **context}
    exc.context = merged  # type: ignore[attr-defined]  # an attribute we add to any exception
    return exc


class TriggerLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]  # generic only in newer typeshed
    """Adds ``extra`` and per-call ``context=...`` to records; remembers the
    highest level logged through it in ``max_level`` (emitted or not)."""

    def __init__(self, logger: logging.Logger, extra: Mapping[str, Any]):
        super().__init__(logger, dict(extra))
        self.max_level = logging.NOTSET

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        context = kwargs.pop("context", None)
        extra = {**(self.extra or {}), **kwargs.get("extra", {})}
        if context is not None:
            extra["context"] = dict(context)
        kwargs["extra"] = extra
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        # Recorded whether or not this process's logging emits the level: the
        # instance's log level must not depend on the worker's log settings.
        self.max_level = max(self.max_level, level)
        super().log(level, msg, *args, **kwargs)
