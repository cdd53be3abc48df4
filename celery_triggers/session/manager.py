"""The trigger manager: storage transaction + engine + dispatch after commit
+ hooks and signals.

Each public operation is one atomic storage transaction of an operation of
:mod:`celery_triggers.core.operations` (see :mod:`.commit`). Dispatch
happens only after the commit, so a worker never sees an instance that
storage does not know yet; a dispatch failure is reported to the caller
(:class:`DispatchError`) and the instance stays ``scheduled``. What an
operation committed is then announced: signals (:mod:`.signals`), the
original framework's ``_post_*`` overrides, and the registered
:class:`~.hooks.Hooks`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.config import Configuration, TaskConfig, parse_configs
from ..core.data import normalize_kwargs
from ..core.errors import DispatchError, TriggersError, UnknownTask
from ..core.operations import Expire, Fail, Finish, FireEach, Operation, Retry, Skip
from ..core.operations import Fire as FireOperation
from ..core.state import Changes, Instance
from ..storage import SessionStorage, SessionTxn
from .commit import Body, batched, dispatch, ran_in_caller, transaction
from .edge import checked_event, checked_uid
from .fired import EachPlan, Fired
from .hooks import around
from .host import error_metadata, host_of
from .inspection import SessionInspection, SessionStorageView, instance_ref
from .keys import Once, check_key, keyed_body, prior_instances
from .operator import OperatorActions
from .signals import instance_status_changed, trigger_fired
from .typos import warn_if_unconfigured

if TYPE_CHECKING:
    from celery import Celery


__all__ = ["EachPlan", "Fired", "TriggerManager", "error_metadata", "host_of"]

#: The original framework's hooks a subclass may override.
_POST_HOOKS = ("_post_fire", "_post_replay", "_post_skip")


class TriggerManager(OperatorActions, SessionInspection):
    """Fires triggers into one session and manages its instances.

    ``TriggerManager(storage)`` takes a storage bound to a session UID
    (``backend.bind(uid)``, or the Django ``CacheStorageBackend(uid)``).
    ``app`` defaults to Celery's current app, which must have the extension
    installed (``Triggers(app)``).

    Extension points: :class:`~celery_triggers.session.hooks.Hooks`
    registered with ``app.triggers.add_hooks(...)``; or, as in the original
    framework, a subclass overriding ``_post_fire``, ``_post_replay`` and
    ``_post_skip`` (set ``triggers_manager_class`` so that workers use the
    subclass for cascades too).
    """

    #: The session's storage, with the original framework's inspection surface.
    storage: SessionStorageView
    #: Whether this class overrides one of the original framework's hooks
    #: (set for each subclass when it is defined).
    overrides_post_hooks: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.overrides_post_hooks = cls.overrides_post_hooks or any(name in cls.__dict__ for name in _POST_HOOKS)

    def __init__(self, storage: SessionStorage, app: Celery | None = None):
        if not isinstance(storage, SessionStorage):
            raise TypeError(f"TriggerManager needs a storage bound to a session (backend.bind(uid)), got {storage!r}")
        #: The session's storage, with the original framework's inspection
        #: surface (``manager.storage["t_x#0"]``, ``.instances``, ...).
        self.storage = SessionStorageView(storage, self)
        self.extension = host_of(app)
        self.app = self.extension.app

    # -- the original framework's hooks ---------------------------------------
    def _post_fire(self, trigger_name: str, tasks_scheduled: list[Instance]) -> None:
        """Called after ``trigger_name`` was committed and its instances sent."""

    def _post_replay(self, task_instance: Instance) -> None:
        """Called after a replay with the instance that was replayed (the
        failed one, now ``replayed``; ``metadata["replayed_by"]`` names its
        clone), as in the original framework."""

    def _post_skip(self, instance: Instance, cascade: bool) -> None:
        """Called after ``instance`` was skipped (after the cascade's
        ``_post_fire`` when ``cascade`` is true)."""

    @property
    def runs_user_code(self) -> bool:
        """Whether announcing a commit calls code of the application (a
        signal receiver, a registered hook, an overridden ``_post_*``)."""
        return bool(
            self.overrides_post_hooks
            or self.extension.hooks
            or trigger_fired.receivers
            or instance_status_changed.receivers
        )

    # -- configuration ------------------------------------------------------
    def configs_in(self, txn: SessionTxn) -> Configuration:
        """The app-wide configs overlaid with the session's own, as ``txn`` reads them."""
        return self.extension.configs_with(txn.read_configs())

    def update_configuration(self, configs: Mapping[str, Any]) -> None:
        """Add or replace task configs for this session only."""
        checked_uid(self.uid)
        parsed = parse_configs(configs)
        self.extension.check_runners(parsed.values())
        raw = {name: config.to_dict() for name, config in parsed.items()}

        def write(txn: SessionTxn) -> None:
            txn.write_configs({**txn.read_configs(), **raw})

        self.storage.atomic(write)

    # -- running operations ---------------------------------------------------
    def batch(self) -> AbstractContextManager[None]:
        """Hold in-process runners' work until the outermost operation ends."""
        return batched(self.extension)

    def apply(
        self, operation: Operation, *, resume: bool = False, wrap: Callable[[Body], Body] | None = None
    ) -> Changes:
        """Run ``operation`` in one storage transaction, then dispatch what
        became ready and announce what it fired (even when a message was
        refused: then :class:`DispatchError` is raised after, carrying the
        committed changes). ``resume``: start from what this manager's
        previous transaction left (the worker's finish after its start).
        ``wrap``: what runs around the transaction body (a key's check)."""
        body, prefetch = transaction(self.extension, operation, self.extension.clock)
        if wrap is not None:
            body = wrap(body)
        started = time.time()
        with self.batch():
            changes, configs = self.storage.atomic(body, prefetch, resume=resume)
            scheduled = [changes.instances[name] for name in changes.ready]
            with self._firing(changes, started):
                try:
                    self._committed(changes, configs)
                except DispatchError as exc:
                    exc.changes = changes
                    self._announce_fired(changes, operation.fired_kwargs, scheduled)
                    self.mark_refused(exc.instances, time.time())
                    raise
                self._announce_fired(changes, operation.fired_kwargs, scheduled)
        return changes

    def _firing(self, changes: Changes, started: float) -> AbstractContextManager[None]:
        """The hooks' :meth:`~.hooks.Hooks.firing` contexts, when the operation fired."""
        hooks = self.extension.hooks
        if not (hooks and changes.fired):
            return nullcontext()
        return around([h.firing(self, list(changes.fired), started) for h in hooks])

    def _committed(self, changes: Changes, configs: Mapping[str, TaskConfig]) -> None:
        """After the commit: deadlines indexed, status signals and hooks, then dispatch."""
        if not configs and changes.fired:
            warn_if_unconfigured(self.extension, self.uid, changes.fired[0])
        if changes.deadlines:
            self.storage.backend.index_deadlines(self.uid, changes.deadlines)
        hooks = self.extension.hooks
        for t in changes.transitions:
            instance_status_changed.send(sender=self, session_uid=self.uid, instance=t.instance, old=t.old, new=t.new)
            for hook in hooks:
                hook.status_changed(self, t.instance, t.old, t.new)
                hook.instance_changed(self, changes.instances[t.instance], t.old, t.new)
        ready = [changes.instances[name] for name in changes.ready]
        dispatch(self.extension, self.uid, self.storage.backend, ready, configs)

    def _announce_fired(self, changes: Changes, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        for trigger in changes.fired:  # at most one: the external fire, or the cascade (or on_timeout)
            record = changes.triggers.get(trigger)
            self._announce(trigger, kwargs if record is None or kwargs else record.kwargs, scheduled)

    def _announce(self, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        """``trigger_fired``, the ``_post_fire`` override, then the hooks, for one committed fire."""
        trigger_fired.send(
            sender=self, session_uid=self.uid, trigger=trigger, kwargs=kwargs, scheduled=[i.name for i in scheduled]
        )
        self._post_fire(trigger, scheduled)
        for hook in self.extension.hooks:
            hook.fired(self, trigger, kwargs, scheduled)

    def announce_replay(self, instance: Instance) -> None:
        self._post_replay(instance)
        for hook in self.extension.hooks:
            hook.replayed(self, instance)

    def announce_skip(self, instance: Instance, cascade: bool) -> None:
        self._post_skip(instance, cascade)
        for hook in self.extension.hooks:
            hook.skipped(self, instance, cascade)

    # -- firing -------------------------------------------------------------
    def fire(
        self, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None = None, *, key: str | None = None
    ) -> Fired:
        """Fire a trigger; return the instances it scheduled (a list with a
        ``wait`` method: ``app.triggers.fire(...).wait(timeout=30)``).

        ``key``: an idempotency key. A fire whose key this session used
        already changes nothing and returns what the first fire with that
        key scheduled, with ``duplicate`` true (see :mod:`.keys`)."""
        once = None if key is None else Once(self.extension, check_key(key))
        trigger_name, kwargs = checked_event(self.extension, self.uid, trigger_name, trigger_kwargs)
        changes = self.apply(FireOperation(trigger_name, kwargs), wrap=None if once is None else once.wrap)
        if once is not None and once.prior is not None:
            return Fired(once.prior, self, duplicate=True)
        fired = [changes.instances[name] for name in changes.ready]
        if fired and ran_in_caller(self.extension):  # the eager runner ran them already: show how they ended
            fresh = self.instances
            fired = [fresh.get(i.name, i) for i in fired]
        return Fired(fired, self)

    def fire_each(self, events: Sequence[Sequence[Any]]) -> list[Fired | TriggersError]:
        """Fire several ``(trigger, kwargs[, key])`` events into this session in one
        transaction, in order: the same result as :meth:`fire` for each in
        turn with nothing run in between, for one commit. One result per
        event: what it scheduled, or the typed error of an event refused at
        the edge (bad name or kwargs; the others still fire), or the
        :class:`DispatchError` naming its instances the broker refused."""
        plan = self.plan_each(events)
        if plan.body is not None:
            with self.batch():
                try:
                    changes, configs = self.storage.atomic(plan.body, plan.prefetch)
                except TriggersError as exc:
                    return plan.failed(exc)
                return self.each_committed(plan, changes, configs)
        return plan.outcomes()

    def plan_each(self, events: Sequence[Sequence[Any]], max_bytes: int | None = None) -> EachPlan:
        """:meth:`fire_each` before its transaction: the events checked at
        the edge, and the transaction body (None when no event is valid).
        Bulk firing runs the bodies of many sessions together
        (:meth:`StorageBackend.run_many`), then :meth:`each_committed`."""
        plan = EachPlan(len(events))
        if max_bytes is None:  # one settings lookup, not one per event (a bulk fire: one per batch)
            max_bytes = self.extension.max_kwargs_bytes
        for number, (trigger_name, trigger_kwargs, *rest) in enumerate(events):
            try:
                key = check_key(rest[0]) if rest and rest[0] is not None else None
                plan.checked.append(
                    (number, *checked_event(self.extension, self.uid, trigger_name, trigger_kwargs, max_bytes))
                )
                plan.keys.append(key)
            except TriggersError as exc:
                plan.results[number] = exc
        plan.fired = list(range(len(plan.checked)))
        if plan.checked:
            operation = FireEach(tuple((name, kwargs) for _, name, kwargs in plan.checked))
            plan.body, plan.prefetch = transaction(self.extension, operation, self.extension.clock)
            if any(plan.keys):
                plan.body = keyed_body(self.extension, plan, plan.body, self.extension.clock)
        return plan

    def each_committed(self, plan: EachPlan, changes: Changes, configs: Configuration) -> list[Fired | TriggersError]:
        """:meth:`fire_each` after its commit: signal, dispatch, announce each event."""
        refused: DispatchError | None = None
        with self.batch(), self._firing(changes, plan.started):
            try:
                self._committed(changes, configs)
            except DispatchError as exc:
                exc.changes = changes
                refused = exc
            fired: dict[int, list[Instance]] = {}
            for index, ready in zip(plan.fired, changes.per_event, strict=True):
                number, trigger, kwargs = plan.checked[index]
                instances = fired[index] = [changes.instances[name] for name in ready]
                self._announce(trigger, kwargs, instances)
                lost = refused is not None and set(ready) & set(refused.instances)
                plan.results[number] = refused if lost and refused is not None else Fired(instances, self)
            for index in (*plan.prior, *plan.same_as):
                plan.results[plan.checked[index][0]] = Fired(prior_instances(plan, index, fired), self, duplicate=True)
        if refused is not None:
            self.mark_refused(refused.instances, time.time())
        return plan.outcomes()

    # -- the worker protocol (celery_triggers.worker.protocol) ---------------
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
            for hook in self.extension.hooks:
                hook.status_changed(self, name, before.status, instance.status)
                hook.instance_changed(self, instance, before.status, instance.status)
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
        operation = Finish(instance_ref(name), result, token, dict(metadata or {}))
        changes = self.apply(operation, resume=True)  # from what this worker's start left, when nothing changed
        return [changes.instances[n] for n in changes.ready]

    def expire_instance(self, name: str, at: float | None = None) -> Changes:
        """Apply instance ``name``'s deadline now (what the deadline sweep
        runs for a due entry): past it, an unstarted instance is
        ``abandoned`` and its task's ``on_timeout`` fires and cascades; an
        instance that became ready is untouched. One optimistic commit, so
        a trigger arriving at the same moment either completes the
        instance first (it runs) or finds it abandoned. ``at``: the time to
        judge the deadline at (default: now)."""
        return self.apply(Expire(instance_ref(name), at))

    def fail_instance(self, name: str, token: str | None, error: Mapping[str, Any]) -> Instance:
        """Step 2 when the task raised: mark the instance ``failed`` with
        ``error`` (see :func:`error_metadata`); nothing cascades."""
        changes = self.apply(Fail(instance_ref(name), dict(error), token), resume=True)
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
        kwargs = self.replacement(name, replacement_kwargs)
        error = {**(error_metadata(exc) if exc is not None else {}), **(metadata or {})}
        changes = self.apply(Retry(instance_ref(name), error, kwargs, countdown))
        return changes.instances[changes.instances[name].metadata["replayed_by"]]

    def skip_running_instance(
        self, name: str, cascade: bool = False, result: Any = None, metadata: Mapping[str, Any] | None = None
    ) -> Instance:
        """Step 2 when the task skipped itself (``context.skip()``): the
        running instance becomes ``skipped``, cascading ``result`` if
        ``cascade``."""
        return self._skip(Skip(instance_ref(name), cascade, result, own=True, metadata=dict(metadata or {})))

    def replacement(
        self, name: str, replacement_kwargs: Mapping[str, Mapping[str, Any]] | None
    ) -> dict[str, dict[str, Any]] | None:
        """Replacement kwargs (trigger -> kwargs) checked as a fire's are."""
        if replacement_kwargs is None:
            return None
        return {
            trigger: normalize_kwargs(value, what=f"replacement kwargs for {trigger!r}")
            for trigger, value in normalize_kwargs(replacement_kwargs, what=f"replay of {name}").items()
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session={self.uid!r}>"
