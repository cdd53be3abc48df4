"""The trigger manager: storage transaction + engine + dispatch after commit
+ hooks and signals.

Each public operation is one atomic storage transaction. Dispatch happens
only after the commit, so a worker never sees an instance that storage does
not know yet; a dispatch failure is reported to the caller
(:class:`DispatchError`) and the instance stays ``scheduled``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..core import engine
from ..core.config import Configuration, TaskConfig, parse_configs
from ..core.data import MAX_NAME_LENGTH, MAX_UID_LENGTH, check_text, normalize_kwargs
from ..core.dispatch import Dispatch
from ..core.errors import DispatchError, InvalidName, InvalidSession, TriggersError, UnknownTask
from ..core.state import Changes, Instance, Snapshot
from ..storage import SessionStorage, SessionTxn
from .host import error_metadata, host_of
from .inspection import SessionInspection, SessionStorageView, instance_ref
from .operator import InstanceRef, OperatorActions
from .signals import instance_status_changed, trigger_fired

if TYPE_CHECKING:
    from celery import Celery


__all__ = ["EachPlan", "Fired", "TriggerManager", "error_metadata", "host_of"]

#: Nesting depth of manager operations in this thread (a hook may fire).
_depth = threading.local()

Operation = Callable[[Snapshot, Mapping[str, TaskConfig]], Changes]


class Fired(list[Instance]):
    """What ``fire`` returns: the instances it scheduled, and a handle on
    the session to wait for."""

    def __init__(self, scheduled: list[Instance], session: TriggerManager):
        super().__init__(scheduled)
        self.session = session

    def wait(self, timeout: float = 30.0, *, until: str = "idle", interval: float = 0.2) -> dict[str, Instance]:
        """:meth:`TriggerManager.wait` on the session fired into."""
        return self.session.wait(timeout, until=until, interval=interval)


class EachPlan:
    """:meth:`TriggerManager.fire_each` split at its transaction (see
    :meth:`TriggerManager.plan_each`)."""

    def __init__(self, count: int):
        self.results: list[Fired | TriggersError | None] = [None] * count
        #: (event number, trigger, normalised kwargs) of the events that passed the edge checks.
        self.checked: list[tuple[int, str, dict[str, Any]]] = []
        #: Per checked event, the instances it scheduled (set by the body).
        self.scheduled: list[list[str]] = []
        self.body: Callable[[SessionTxn], tuple[Changes, Configuration]] | None = None
        self.prefetch: tuple[Any, ...] = ()

    def failed(self, exc: TriggersError) -> list[Fired | TriggersError]:
        """The transaction was refused: every checked event fails with ``exc``."""
        for number, _, _ in self.checked:
            self.results[number] = exc
        return self.outcomes()

    def outcomes(self) -> list[Fired | TriggersError]:
        return [r for r in self.results if r is not None]


class TriggerManager(OperatorActions, SessionInspection):
    """Fires triggers into one session and manages its instances.

    ``TriggerManager(storage)`` takes a storage bound to a session UID
    (``backend.bind(uid)``, or the Django ``CacheStorageBackend(uid)``).
    ``app`` defaults to Celery's current app, which must have the extension
    installed (``Triggers(app)``).

    Subclasses may override the hooks ``_post_fire``, ``_post_replay`` and
    ``_post_skip``; set ``triggers_manager_class`` so that workers use the
    subclass for cascades too.
    """

    #: The session's storage, with the original framework's inspection surface.
    storage: SessionStorageView

    def __init__(self, storage: SessionStorage, app: Celery | None = None):
        if not isinstance(storage, SessionStorage):
            raise TypeError(f"TriggerManager needs a storage bound to a session (backend.bind(uid)), got {storage!r}")
        #: The session's storage, with the original framework's inspection
        #: surface (``manager.storage["t_x#0"]``, ``.instances``, ...).
        self.storage = SessionStorageView(storage, self)
        self.extension = host_of(app)
        self.app = self.extension.app

    # -- hooks --------------------------------------------------------------
    def _post_fire(self, trigger_name: str, tasks_scheduled: list[Instance]) -> None:
        """Called after ``trigger_name`` was committed and its instances sent."""

    def _post_replay(self, task_instance: Instance) -> None:
        """Called after a replay with the instance that was replayed (the
        failed one, now ``replayed``; ``metadata["replayed_by"]`` names its
        clone), as in the original framework."""

    def _post_skip(self, instance: Instance, cascade: bool) -> None:
        """Called after ``instance`` was skipped (after the cascade's
        ``_post_fire`` when ``cascade`` is true)."""

    # -- configuration ------------------------------------------------------
    def _configs(self, txn: SessionTxn) -> Configuration:
        return self.extension.configs_with(txn.read_configs())

    def update_configuration(self, configs: Mapping[str, Any]) -> None:
        """Add or replace task configs for this session only."""
        self._check_uid()
        parsed = parse_configs(configs)
        self.extension.check_runners(parsed.values())
        raw = {name: config.to_dict() for name, config in parsed.items()}

        def op(txn: SessionTxn) -> None:
            txn.write_configs({**txn.read_configs(), **raw})

        self.storage.atomic(op)

    # -- operations ---------------------------------------------------------
    def _apply(
        self,
        needs: Callable[[Mapping[str, TaskConfig]], engine.Needs],
        operation: Operation,
        prefetch: tuple[str, ...] = (),
        resume: bool = False,
    ) -> tuple[Changes, Configuration]:
        """Load what ``operation`` needs, run it, assign task ids, commit,
        then signal and dispatch. Returns the changes and the configs used."""
        body, first_reads = self._transaction(needs, operation, prefetch)
        changes, configs = self.storage.atomic(body, first_reads, resume=resume)
        self._committed(changes, configs)
        return changes, configs

    def _transaction(
        self,
        needs: Callable[[Mapping[str, TaskConfig]], engine.Needs],
        operation: Operation,
        prefetch: tuple[str, ...] = (),
    ) -> tuple[Callable[[SessionTxn], tuple[Changes, Configuration]], tuple[Any, ...]]:
        """The transaction body of an operation (pure but for storage: it may
        run several times) and what to read with its first read."""

        app_configs = self.extension.configs
        # Read up front what the app-wide configuration says the operation will
        # need (a session's own configs may need more: read lazily then).
        guess = needs(app_configs)

        def body(txn: SessionTxn) -> tuple[Changes, Configuration]:
            configs = self._configs(txn)
            changes = operation(txn.load(guess if configs is app_configs else needs(configs)), configs)
            for name in changes.ready:
                changes.instances[name].metadata.setdefault("task_id", str(uuid.uuid4()))
            txn.write(changes)
            return changes, configs

        return body, (*prefetch, *guess.waiting)

    def _committed(self, changes: Changes, configs: Configuration) -> None:
        """After the commit: signal and dispatch (a refused message raises
        :class:`DispatchError` carrying the committed changes)."""
        try:
            self._after_commit(changes, configs)
        except DispatchError as exc:
            exc.changes = changes  # committed: the caller still signals what it fired
            raise

    @contextmanager
    def _signalled_on_dispatch_error(self, kwargs: dict[str, Any]) -> Iterator[None]:
        """The operation committed but a message was refused: still send
        ``trigger_fired`` and call ``_post_fire`` for what it fired, then
        raise the :class:`DispatchError`."""
        try:
            yield
        except DispatchError as exc:
            if exc.changes is not None:
                self._fired(exc.changes, kwargs)
            raise

    def _after_commit(self, changes: Changes, configs: Mapping[str, TaskConfig]) -> None:
        for t in changes.transitions:
            instance_status_changed.send(sender=self, session_uid=self.uid, instance=t.instance, old=t.old, new=t.new)
        self._dispatch([changes.instances[name] for name in changes.ready], configs)

    def _dispatch(self, instances: list[Instance], configs: Mapping[str, TaskConfig]) -> None:
        by_runner: dict[str, list[Dispatch]] = {}
        alias = self.extension.alias_of(self.storage.backend) if instances else None
        for instance in instances:
            config = configs[instance.task]
            runner = config.using or self.extension.default_runner
            by_runner.setdefault(runner, []).append(Dispatch(self.uid, instance, config, alias))
        failures: list[DispatchError] = []
        for runner_name, items in by_runner.items():  # every runner gets its instances, whatever another did
            try:
                self.extension.runner(runner_name).dispatch(items)
            except DispatchError as exc:
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            names = [name for exc in failures for name in exc.instances]
            raise DispatchError("; ".join(str(exc) for exc in failures), names)

    @contextmanager
    def _batch(self) -> Iterator[None]:
        """Run in-process runners' queued work only when the outermost
        operation (hooks included) is done, as a worker would see it."""
        depth = getattr(_depth, "value", 0)
        _depth.value = depth + 1
        try:
            yield
        finally:
            _depth.value = depth
        if depth == 0:
            for runner in self.extension.active_runners():
                runner.drain()

    def fire(self, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None = None) -> Fired:
        """Fire a trigger; return the instances it scheduled (a list with a
        ``wait`` method: ``app.triggers.fire(...).wait(timeout=30)``)."""
        trigger_name, kwargs = self._checked_fire(trigger_name, trigger_kwargs)
        with self._batch():
            with self._signalled_on_dispatch_error(kwargs):
                changes, _ = self._apply(
                    lambda configs: engine.needs_for_fire(configs, trigger_name),
                    lambda snap, configs: engine.fire(snap, configs, trigger_name, kwargs, time.time()),
                )
            return Fired(self._fired(changes, kwargs), self)

    def fire_each(self, events: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[Fired | TriggersError]:
        """Fire several ``(trigger, kwargs)`` events into this session in one
        transaction, in order: the same result as :meth:`fire` for each in
        turn with nothing run in between, for one commit. One result per
        event: what it scheduled, or the typed error of an event refused at
        the edge (bad name or kwargs; the others still fire), or the
        :class:`DispatchError` naming its instances the broker refused."""
        plan = self.plan_each(events)
        if plan.body is not None:
            with self._batch():
                try:
                    changes, configs = self.storage.atomic(plan.body, plan.prefetch)
                except TriggersError as exc:
                    return plan.failed(exc)
                return self.each_committed(plan, changes, configs)
        return plan.outcomes()

    def plan_each(self, events: Sequence[tuple[str, Mapping[str, Any] | None]]) -> EachPlan:
        """:meth:`fire_each` before its transaction: the events checked at
        the edge, and the transaction body (None when no event is valid).
        Bulk firing runs the bodies of many sessions together
        (:meth:`StorageBackend.run_many`), then :meth:`each_committed`."""
        plan = EachPlan(len(events))
        max_bytes = self.extension.max_kwargs_bytes  # one settings lookup, not one per event
        for number, (trigger_name, trigger_kwargs) in enumerate(events):
            try:
                plan.checked.append((number, *self._checked_fire(trigger_name, trigger_kwargs, max_bytes)))
            except TriggersError as exc:
                plan.results[number] = exc
        if plan.checked:
            checked = plan.checked

            def needs(configs: Mapping[str, TaskConfig]) -> engine.Needs:
                found = engine.Needs()
                for trigger in {name for _, name, _ in checked}:
                    found |= engine.needs_for_fire(configs, trigger)
                return found

            def operation(snap: Snapshot, configs: Mapping[str, TaskConfig]) -> Changes:
                changes, plan.scheduled[:] = engine.fire_each(
                    snap, configs, [(n, k) for _, n, k in checked], time.time()
                )
                return changes

            plan.body, plan.prefetch = self._transaction(needs, operation)
        return plan

    def each_committed(self, plan: EachPlan, changes: Changes, configs: Configuration) -> list[Fired | TriggersError]:
        """:meth:`fire_each` after its commit: signal, dispatch, announce each event."""
        refused: DispatchError | None = None
        with self._batch():
            try:
                self._committed(changes, configs)
            except DispatchError as exc:
                refused = exc
            for (number, trigger, kwargs), ready in zip(plan.checked, plan.scheduled, strict=True):
                instances = [changes.instances[name] for name in ready]
                self._announce(trigger, kwargs, instances)
                lost = refused is not None and set(ready) & set(refused.instances)
                plan.results[number] = refused if lost and refused is not None else Fired(instances, self)
        return plan.outcomes()

    def _checked_fire(
        self, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None, max_bytes: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The trigger name and kwargs (and the session's UID), checked at the edge."""
        self._check_uid()
        problem = check_text(trigger_name, what="a trigger name", limit=MAX_NAME_LENGTH)
        if problem is not None:
            raise InvalidName(problem)
        if trigger_kwargs is None or (isinstance(trigger_kwargs, Mapping) and not trigger_kwargs):
            return trigger_name, {}  # nothing to check or measure: no settings lookup
        limit = self.extension.max_kwargs_bytes if max_bytes is None else max_bytes
        return trigger_name, normalize_kwargs(trigger_kwargs, what=f"trigger {trigger_name!r}", max_bytes=limit)

    def _check_uid(self) -> None:
        """A session written to must have a UID that forges no output line
        (storage still reads one stored before that rule: see ``check_uid``)."""
        problem = check_text(self.uid, what="a session UID", limit=MAX_UID_LENGTH)
        if problem is not None:
            raise InvalidSession(problem)

    def _fired(self, changes: Changes, kwargs: dict[str, Any]) -> list[Instance]:
        """Signal and hook each trigger the operation fired (at most one)."""
        scheduled = [changes.instances[name] for name in changes.ready]
        for trigger in changes.fired:
            self._announce(trigger, kwargs, scheduled)
        return scheduled

    def _announce(self, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        """``trigger_fired``, then the ``_post_fire`` hook, for one committed fire."""
        trigger_fired.send(
            sender=self, session_uid=self.uid, trigger=trigger, kwargs=kwargs, scheduled=[i.name for i in scheduled]
        )
        self._post_fire(trigger, scheduled)

    # -- the worker protocol (celery_triggers.worker.protocol) ---------
    def _instance_op(
        self, ref: InstanceRef, operation: Operation, *, cascade: bool = True, resume: bool = False
    ) -> tuple[Changes, Configuration]:
        """An operation on one instance (read together with its first read)."""
        name = instance_ref(ref)
        needs = lambda configs: engine.needs_for_instance(configs, name, cascade=cascade)  # noqa: E731
        return self._apply(needs, operation, prefetch=(name,), resume=resume)

    def start_instance(
        self, name: str, token: str, *, track: bool = True, **metadata: Any
    ) -> tuple[Instance, TaskConfig]:
        """Step 1 of the worker protocol: the message ``token`` (its Celery
        task id) may run instance ``name``. One atomic step: ``scheduled`` ->
        ``running`` (only checked when ``track`` is false). Returns the
        instance as stored, and its task config, so the task receives the
        kwargs storage holds.

        Raises :class:`UnknownInstance`, :class:`IllegalTransition` (resolved
        or not yet scheduled) or :class:`StaleDispatch` (another token): the
        message must not run the task body.
        """
        before, instance, session_configs = self.storage.start(name, token, time.time(), track=track, metadata=metadata)
        if instance.status is not before.status:
            instance_status_changed.send(
                sender=self, session_uid=self.uid, instance=name, old=before.status, new=instance.status
            )
        config = self.extension.configs_with(session_configs).get(instance.task)
        if config is None:
            raise UnknownTask(f"{name}: no trigger task {instance.task!r} is configured here")
        return instance, config

    def finish_instance(
        self, name: str, token: str | None, result: Any, metadata: Mapping[str, Any] | None = None
    ) -> list[Instance]:
        """Step 2: record ``result``, mark the instance ``finished`` and
        cascade, in one atomic step (one round trip on Redis when nothing
        else changed since this manager's start). Idempotent: finishing a
        finished instance changes nothing. Returns the instances the cascade
        scheduled."""
        meta = dict(metadata or {})
        with self._batch():
            with self._signalled_on_dispatch_error(engine.cascade_kwargs(result)):
                changes, _ = self._instance_op(
                    name,
                    lambda snap, configs: engine.finish(snap, configs, name, result, time.time(), token, **meta),
                    resume=True,  # start from what this worker's start left, when nothing changed since
                )
            return self._fired(changes, engine.cascade_kwargs(result))

    def fail_instance(self, name: str, token: str | None, error: Mapping[str, Any]) -> Instance:
        """Step 2 when the task raised: mark the instance ``failed`` with
        ``error`` (see :func:`error_metadata`); nothing cascades."""
        changes, _ = self._instance_op(
            name, lambda snap, _: engine.fail(snap, name, error, time.time(), token), cascade=False, resume=True
        )
        return changes.instances.get(name) or self.instance(name)

    def retry_instance(
        self,
        name: str,
        exc: BaseException | None = None,
        countdown: float | None = None,
        replacement_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Instance:
        """Step 2 when the task asked to be retried (``context.retry()``):
        the running instance becomes ``replayed`` (with ``exc`` recorded)
        and a clone is scheduled after ``countdown`` seconds; returns the
        clone."""
        kwargs = self._replacement(name, replacement_kwargs)
        error = error_metadata(exc) if exc is not None else {}
        with self._batch():
            changes, _ = self._instance_op(
                name,
                lambda snap, configs: engine.retry(
                    snap, configs, name, {**error, **(metadata or {})}, kwargs, countdown, time.time()
                ),
                cascade=False,
            )
        return changes.instances[changes.instances[name].metadata["replayed_by"]]

    def skip_running_instance(
        self, name: str, cascade: bool = False, result: Any = None, metadata: Mapping[str, Any] | None = None
    ) -> Instance:
        """Step 2 when the task skipped itself (``context.skip()``): the
        running instance becomes ``skipped``, cascading ``result`` if
        ``cascade``."""
        return self._skip(name, cascade, result, own=True, **(metadata or {}))

    def _replacement(
        self, name: str, replacement_kwargs: Mapping[str, Mapping[str, Any]] | None
    ) -> dict[str, dict[str, Any]] | None:
        if replacement_kwargs is None:
            return None
        return {
            trigger: normalize_kwargs(value, what=f"replacement kwargs for {trigger!r}")
            for trigger, value in normalize_kwargs(replacement_kwargs, what=f"replay of {name}").items()
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session={self.uid!r}>"
