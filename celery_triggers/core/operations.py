"""Every operation on a session as a value: what it reads (:meth:`needs`,
from the configuration alone, and ``prefetch``, the instance it names) and
what it does (:meth:`apply`, the engine on a snapshot at a given time).

The session layer runs any of them the same way: load what it needs in a
storage transaction, apply, write the changes, commit, dispatch what became
ready, announce what it fired (``fired_kwargs``). Plain data, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import engine
from .needs import Needs, needs_for_fire, needs_for_instance
from .state import Changes, Snapshot, Status, split_instance_name

__all__ = [
    "Expire",
    "Fail",
    "Finish",
    "Fire",
    "FireEach",
    "InstanceOperation",
    "Lost",
    "Operation",
    "Redispatch",
    "Replay",
    "Retry",
    "Revoke",
    "SetStatus",
    "Skip",
    "Start",
]

Configs = Mapping[str, Any]
Kwargs = dict[str, Any]
TriggerKwargs = dict[str, dict[str, Any]]


class Operation:
    """One operation on one session."""

    #: Instance names (and (task, trigger) pairs) to read with the first read.
    prefetch: tuple[Any, ...] = ()

    def needs(self, configs: Configs) -> Needs:
        """The records :meth:`apply` reads, from the configuration alone."""
        raise NotImplementedError

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        """The changes to write (the engine; ``snapshot`` is not touched)."""
        raise NotImplementedError

    @property
    def fired_kwargs(self) -> Kwargs:
        """The kwargs of the trigger it fires, if it fires one."""
        return {}


@dataclass(frozen=True)
class Fire(Operation):
    """Fire ``trigger`` with ``kwargs``."""

    trigger: str
    kwargs: Kwargs = field(default_factory=dict)

    def needs(self, configs: Configs) -> Needs:
        return needs_for_fire(configs, self.trigger)

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.fire(snapshot, configs, self.trigger, self.kwargs, now)

    @property
    def fired_kwargs(self) -> Kwargs:
        return self.kwargs


@dataclass(frozen=True)
class FireEach(Operation):
    """Fire each ``(trigger, kwargs)`` in turn in one transaction; the
    instances each event scheduled are in ``changes.per_event``."""

    events: tuple[tuple[str, Kwargs], ...]

    def needs(self, configs: Configs) -> Needs:
        found = Needs()
        for trigger in sorted({trigger for trigger, _ in self.events}):
            found |= needs_for_fire(configs, trigger)
        return found

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        changes, scheduled = engine.fire_each(snapshot, configs, list(self.events), now)
        changes.per_event = scheduled
        return changes


@dataclass(frozen=True)
class InstanceOperation(Operation):
    """An operation on the instance ``name`` (read with the first read)."""

    name: str

    #: Whether it may fire the instance's task name (its cascade): then it
    #: reads what that fire needs too.
    cascades = True

    @property
    def prefetch(self) -> tuple[Any, ...]:  # type: ignore[override]  # per instance, not per class
        return (self.name,)

    def needs(self, configs: Configs) -> Needs:
        return needs_for_instance(configs, self.name, cascade=self.cascades)


@dataclass(frozen=True)
class Start(InstanceOperation):
    """The message ``token`` starts the instance (``scheduled -> running``)."""

    token: str | None = None
    track: bool = True
    metadata: Kwargs = field(default_factory=dict)
    cascades = False

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.start(snapshot, self.name, now, self.token, track=self.track, **self.metadata)


@dataclass(frozen=True)
class Finish(InstanceOperation):
    """The instance's task returned ``result``: finish it and cascade, once."""

    result: Any = None
    token: str | None = None
    metadata: Kwargs = field(default_factory=dict)

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.finish(snapshot, configs, self.name, self.result, now, self.token, **self.metadata)

    @property
    def fired_kwargs(self) -> Kwargs:
        return engine.cascade_kwargs(self.result)


@dataclass(frozen=True)
class Fail(InstanceOperation):
    """The instance's task raised: record ``error``, no cascade."""

    error: Kwargs = field(default_factory=dict)
    token: str | None = None
    cascades = False

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.fail(snapshot, self.name, self.error, now, self.token)


@dataclass(frozen=True)
class Retry(InstanceOperation):
    """The running task asked to be retried: ``replayed``, and a clone
    scheduled after ``countdown`` seconds."""

    error: Kwargs = field(default_factory=dict)
    replacement: TriggerKwargs | None = None
    countdown: float | None = None
    cascades = False

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.retry(snapshot, configs, self.name, self.error, self.replacement, self.countdown, now)


@dataclass(frozen=True)
class Replay(InstanceOperation):
    """Replay a failed instance: ``replayed``, and a clone scheduled."""

    replacement: TriggerKwargs | None = None
    update: TriggerKwargs | None = None
    cascades = False

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.replay(snapshot, configs, self.name, self.replacement, now, self.update)


@dataclass(frozen=True)
class Skip(InstanceOperation):
    """Mark a failed instance (or, ``own``, a running one skipping itself)
    ``skipped``; with ``cascade``, fire its task name with ``result``."""

    cascade: bool = False
    result: Any = None
    own: bool = False
    metadata: Kwargs = field(default_factory=dict)

    @property
    def cascades(self) -> bool:  # type: ignore[override]  # per operation, not per class
        return self.cascade

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.skip(snapshot, configs, self.name, self.cascade, self.result, now, own=self.own, **self.metadata)

    @property
    def fired_kwargs(self) -> Kwargs:
        return engine.cascade_kwargs(self.result)


@dataclass(frozen=True)
class SetStatus(InstanceOperation):
    """Operator override: force ``status`` (None: keep it), merge
    ``metadata``; with ``cascade``, fire the task name with ``kwargs``."""

    status: Status | None = None
    metadata: Kwargs = field(default_factory=dict)
    cascade: bool = False
    kwargs: Kwargs = field(default_factory=dict)

    @property
    def cascades(self) -> bool:  # type: ignore[override]  # per operation, not per class
        return self.cascade

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.set_status(
            snapshot, configs, self.name, self.status, self.metadata, self.cascade, self.kwargs, now
        )

    @property
    def fired_kwargs(self) -> Kwargs:
        return self.kwargs


@dataclass(frozen=True)
class Redispatch(InstanceOperation):
    """Give a scheduled instance a new dispatch ``token`` (``expected``:
    only if it still has that one)."""

    token: str = ""
    expected: str | None = None
    cascades = False

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.redispatch(snapshot, self.name, self.token, now, self.expected)


@dataclass(frozen=True)
class Expire(InstanceOperation):
    """Apply the instance's deadline (see ``engine.expire``): past it, an
    unstarted instance is abandoned and its task's ``on_timeout`` fires.
    ``at``: the time to judge it at (default: the operation's time)."""

    at: float | None = None
    cascades = False

    def needs(self, configs: Configs) -> Needs:
        needs = needs_for_instance(configs, self.name, cascade=False)
        task, _ = split_instance_name(self.name)
        config = configs.get(task)
        on_timeout = getattr(config, "on_timeout", None)
        return needs | needs_for_fire(configs, on_timeout) if on_timeout else needs

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.expire(snapshot, configs, self.name, now if self.at is None else self.at)


@dataclass(frozen=True)
class Lost(InstanceOperation):
    """The worker running ``token`` is gone: re-send with ``resend_token``
    (the message will come back), or fail with ``error``."""

    token: str = ""
    error: Kwargs = field(default_factory=dict)
    resend_token: str | None = None
    cascades = False

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.lost(snapshot, self.name, self.token, now, self.error, self.resend_token)


@dataclass(frozen=True)
class Revoke(InstanceOperation):
    """Celery revoked the message ``token`` (``terminated``: while it ran)."""

    token: str = ""
    terminated: bool = False
    error: Kwargs = field(default_factory=dict)
    cascades = False

    def apply(self, snapshot: Snapshot, configs: Configs, now: float) -> Changes:
        return engine.revoke(snapshot, self.name, self.token, now, terminated=self.terminated, error=self.error)
