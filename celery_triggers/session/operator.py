"""The operator's actions on a session's instances: replay, skip, status
and metadata overrides, re-dispatch. Mixed into :class:`TriggerManager`,
whose transaction, batching and signalling they use."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..core import engine
from ..core.data import normalize_kwargs
from ..core.errors import InvalidStatus
from ..core.state import Changes, Instance, Snapshot, Status
from .inspection import instance_ref

if TYPE_CHECKING:
    from ..core.config import Configuration, TaskConfig

__all__ = ["InstanceRef", "OperatorActions"]

InstanceRef = str | Instance


class OperatorActions:
    """Replay, skip, force a status, merge metadata, re-dispatch (each one
    atomic storage operation)."""

    if TYPE_CHECKING:  # provided by TriggerManager

        def _instance_op(
            self,
            ref: InstanceRef,
            operation: Callable[[Snapshot, Mapping[str, TaskConfig]], Changes],
            *,
            cascade: bool = True,
            resume: bool = False,
        ) -> tuple[Changes, Configuration]: ...
        def _batch(self) -> AbstractContextManager[None]: ...
        def _signalled_on_dispatch_error(self, kwargs: dict[str, Any]) -> AbstractContextManager[None]: ...
        def _fired(self, changes: Changes, kwargs: dict[str, Any]) -> list[Instance]: ...
        def _replacement(
            self, name: str, replacement_kwargs: Mapping[str, Mapping[str, Any]] | None
        ) -> dict[str, dict[str, Any]] | None: ...
        def _post_replay(self, task_instance: Instance) -> None: ...
        def _post_skip(self, instance: Instance, cascade: bool) -> None: ...

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
        kwargs = self._replacement(name, replacement_kwargs)
        update = self._replacement(name, kwargs_update)
        with self._batch():
            changes, _ = self._instance_op(
                name,
                lambda snap, configs: engine.replay(snap, configs, name, kwargs, time.time(), update),
                cascade=False,
            )
            replayed = changes.instances[name]
            clone = changes.instances[replayed.metadata["replayed_by"]]
            self._post_replay(replayed)
        return clone

    def skip_failed_instance(self, failed_instance: InstanceRef, cascade: bool = False, result: Any = None) -> Instance:
        """Mark a failed instance ``skipped``; with ``cascade``, fire its task
        name as if it had returned ``result``."""
        return self._skip(instance_ref(failed_instance), cascade, result)

    def _skip(self, name: str, cascade: bool, result: Any, *, own: bool = False, **metadata: Any) -> Instance:
        if result is not None:
            normalize_kwargs({"result": result}, what=f"simulated result of {name}")
        with self._batch():
            with self._signalled_on_dispatch_error(engine.cascade_kwargs(result)):
                changes, _ = self._instance_op(
                    name,
                    lambda snap, configs: engine.skip(
                        snap, configs, name, cascade, result, time.time(), own=own, **metadata
                    ),
                    cascade=cascade,
                )
            self._fired(changes, engine.cascade_kwargs(result))
            skipped = changes.instances[name]
            self._post_skip(skipped, cascade)
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
        with self._batch():
            with self._signalled_on_dispatch_error(kwargs):
                changes, _ = self._instance_op(
                    name,
                    lambda snap, configs: engine.set_status(
                        snap, configs, name, status, meta, cascade, kwargs, time.time()
                    ),
                    cascade=cascade,
                )
            self._fired(changes, kwargs)
        return changes.instances[name]

    def update_instance_metadata(self, task_instance: InstanceRef, metadata: Mapping[str, Any]) -> Instance:
        """Merge ``metadata`` into the instance's metadata."""
        return self._set(instance_ref(task_instance), None, metadata)

    def mark_instance_logs_resolved(self, task_instance: InstanceRef) -> Instance:
        """Clear the instance's tracked log level."""
        return self._set(instance_ref(task_instance), None, {"log_level": None, "log_level_name": None})

    def redispatch(self, task_instance: InstanceRef, *, expected_token: str | None = None) -> Instance:
        """Send a ``scheduled`` instance's message again, with a new dispatch
        token (task id): a late original is then ignored by the worker, so
        the body runs once. ``expected_token`` re-sends only if the instance
        still has that token (:class:`StaleDispatch` otherwise)."""
        name = instance_ref(task_instance)
        token = str(uuid.uuid4())
        with self._batch():
            changes, _ = self._instance_op(
                name,
                lambda snap, _: engine.redispatch(snap, name, token, time.time(), expected_token),
                cascade=False,
            )
        return changes.instances[name]
