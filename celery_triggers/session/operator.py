"""The operator's actions on a session's instances: replay, skip, status
and metadata overrides, re-dispatch. Mixed into :class:`TriggerManager`:
each builds an operation (:mod:`celery_triggers.core.operations`) and runs
it with the manager's public :meth:`~OperatorActions.apply`."""

from __future__ import annotations

import abc
import logging
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from ..core.data import normalize_kwargs
from ..core.errors import InvalidStatus
from ..core.operations import Operation, Redispatch, Replay, SetStatus, Skip
from ..core.state import Changes, Instance, Status
from .inspection import instance_ref

logger = logging.getLogger("celery_triggers")

__all__ = ["InstanceRef", "OperatorActions"]

InstanceRef = str | Instance


class OperatorActions(abc.ABC):
    """Replay, skip, force a status, merge metadata, re-dispatch (each one
    atomic storage operation)."""

    @abc.abstractmethod
    def apply(self, operation: Operation, *, resume: bool = False) -> Changes:
        """Run ``operation`` atomically, dispatch and announce (the manager's)."""

    @abc.abstractmethod
    def batch(self) -> AbstractContextManager[None]:
        """Hold in-process runners' work until the outermost operation ends."""

    @abc.abstractmethod
    def replacement(
        self, name: str, replacement_kwargs: Mapping[str, Mapping[str, Any]] | None
    ) -> dict[str, dict[str, Any]] | None:
        """Replacement kwargs checked as a fire's are."""

    @abc.abstractmethod
    def announce_replay(self, instance: Instance) -> None:
        """The original's ``_post_replay``, then the hooks."""

    @abc.abstractmethod
    def announce_skip(self, instance: Instance, cascade: bool) -> None:
        """The original's ``_post_skip``, then the hooks."""

    def replay_failed_instance(
        self,
        failed_instance: InstanceRef,
        replacement_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        kwargs_update: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Instance:
        """Mark a failed instance ``replayed`` and schedule a clone; return the clone.

        The clone runs the task's configuration as it is now, with the
        failed instance's kwargs; ``replacement_kwargs`` replaces them all
        (the original framework's meaning), ``kwargs_update`` replaces only
        the triggers it names.
        """
        name = instance_ref(failed_instance)
        operation = Replay(name, self.replacement(name, replacement_kwargs), self.replacement(name, kwargs_update))
        with self.batch():
            changes = self.apply(operation)
            replayed = changes.instances[name]
            clone = changes.instances[replayed.metadata["replayed_by"]]
            self.announce_replay(replayed)
        return clone

    def skip_failed_instance(self, failed_instance: InstanceRef, cascade: bool = False, result: Any = None) -> Instance:
        """Mark a failed instance ``skipped``; with ``cascade``, fire its task
        name as if it had returned ``result``."""
        return self._skip(Skip(instance_ref(failed_instance), cascade, result))

    def _skip(self, operation: Skip) -> Instance:
        if operation.result is not None:
            normalize_kwargs({"result": operation.result}, what=f"simulated result of {operation.name}")
        with self.batch():
            skipped = self.apply(operation).instances[operation.name]
            self.announce_skip(skipped, operation.cascade)
        return skipped

    def update_instance_status(
        self,
        task_instance: InstanceRef,
        status: Status | str,
        metadata: Mapping[str, Any] | None = None,
        cascade: bool = False,
        cascade_kwargs: Mapping[str, Any] | None = None,
    ) -> Instance:
        """Force an instance's status (operator override)."""
        name = instance_ref(task_instance)
        try:
            new = Status(status)
        except ValueError:
            allowed = ", ".join(s.value for s in Status)
            raise InvalidStatus(f"{name}: {status!r} is not a status (one of: {allowed})") from None
        return self._set(name, new, metadata, cascade, cascade_kwargs)

    def _set(
        self,
        name: str,
        status: Status | None,
        metadata: Mapping[str, Any] | None,
        cascade: bool = False,
        cascade_kwargs: Mapping[str, Any] | None = None,
    ) -> Instance:
        meta = normalize_kwargs(metadata, what=f"metadata of {name}")
        kwargs = normalize_kwargs(cascade_kwargs, what=f"cascade kwargs of {name}")
        return self.apply(SetStatus(name, status, meta, cascade, kwargs)).instances[name]

    def update_instance_metadata(self, task_instance: InstanceRef, metadata: Mapping[str, Any]) -> Instance:
        """Merge ``metadata`` into the instance's metadata."""
        return self._set(instance_ref(task_instance), None, metadata)

    def mark_instance_logs_resolved(self, task_instance: InstanceRef) -> Instance:
        """Clear the instance's tracked log level."""
        return self._set(instance_ref(task_instance), None, {"log_level": None, "log_level_name": None})

    def mark_refused(self, names: list[str], now: float) -> None:
        """Record that the broker refused these instances' newest messages, so
        that ``redispatch`` and the sweep re-send them at once. Best effort:
        the caller raises the ``DispatchError`` either way."""
        for name in names:
            try:
                self.apply(SetStatus(name, None, {"dispatch_refused_at": now}))
            except Exception:  # the refusal is what the caller reports
                logger.warning("celery-triggers: could not record the refused message of %s", name, exc_info=True)

    def redispatch(self, task_instance: InstanceRef, *, expected_token: str | None = None) -> Instance:
        """Send a ``scheduled`` instance's message again, with a new dispatch
        token (task id): a late original is then ignored by the worker, so
        the body runs once. ``expected_token`` re-sends only if the instance
        still has that token (:class:`StaleDispatch` otherwise)."""
        name = instance_ref(task_instance)
        return self.apply(Redispatch(name, str(uuid.uuid4()), expected_token)).instances[name]
