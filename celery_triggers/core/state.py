"""Session state as plain data.

A session is stored as small records, never as one blob:

* one :class:`TriggerRecord` per trigger name that has fired (latest kwargs),
* one :class:`TaskRecord` per trigger task (instance counter, unless state),
* one :class:`Instance` per task instance.

The engine works on a :class:`Snapshot`: the subset of those records that one
operation needs, loaded by the storage layer inside a transaction. It returns
:class:`Changes`, the records to write back. Nothing here does I/O.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .config import TaskConfig

__all__ = [
    "INTERNAL_PREFIX",
    "IN_FLIGHT",
    "RESOLVED",
    "START_OVERLAY",
    "Changes",
    "Instance",
    "Snapshot",
    "Status",
    "TaskRecord",
    "Transition",
    "TriggerRecord",
    "instance_name",
    "is_internal",
    "split_instance_name",
]


class Status(StrEnum):
    """Lifecycle of a task instance."""

    UNSTARTED = "unstarted"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    ABANDONED = "abandoned"
    REPLAYED = "replayed"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


#: A record key whose mapping is merged into ``metadata`` when decoded: a
#: storage may start an instance by appending it (Redis does, in its start
#: script) instead of decoding and re-encoding the whole record.
START_OVERLAY = "~start"

#: Statuses that need no further attention.
RESOLVED = frozenset({Status.FINISHED, Status.ABANDONED, Status.REPLAYED, Status.SKIPPED})
#: A message is out for these: a session with one must not expire or be purged.
IN_FLIGHT = frozenset({Status.SCHEDULED, Status.RUNNING})


#: Sessions whose UID starts with this are celery-triggers' own bookkeeping
#: (the storage's epoch, the workers' heartbeats, the sweeper's lock): never
#: listed to users, purged or recovered.
INTERNAL_PREFIX = "celery-triggers:"


def is_internal(uid: str) -> bool:
    return uid.startswith(INTERNAL_PREFIX)


def instance_name(task: str, number: int) -> str:
    return f"{task}#{number}"


def split_instance_name(name: str) -> tuple[str, int]:
    """``"t_x#3"`` -> ``("t_x", 3)``; raises ``ValueError`` when malformed."""
    task, sep, number = name.rpartition("#")
    if not sep or not task or not number.isdigit():
        raise ValueError(f"{name!r} is not an instance name like 't_task#0'")
    return task, int(number)


@dataclass
class Instance:
    """One execution of a trigger task in one session."""

    task: str
    number: int
    status: Status = Status.UNSTARTED
    #: trigger name -> kwargs of each trigger this instance consumed.
    kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The task's ``unless`` triggers this instance received while unstarted
    #: (the original's ``abandon_state``); complete -> abandoned.
    unless_fired: list[str] = field(default_factory=list)
    #: While unstarted: the triggers it still awaits (storage indexes it by them).
    awaiting: list[str] = field(default_factory=list)
    #: Its task's config, when the inspection surface attached it (not stored).
    config: TaskConfig | None = field(default=None, compare=False, repr=False)

    # The original framework's names for the statuses.
    STATUS_UNSTARTED: ClassVar[str] = "unstarted"
    STATUS_SCHEDULED: ClassVar[str] = "scheduled"
    STATUS_RUNNING: ClassVar[str] = "running"
    STATUS_FINISHED: ClassVar[str] = "finished"
    STATUS_FAILED: ClassVar[str] = "failed"
    STATUS_ABANDONED: ClassVar[str] = "abandoned"
    STATUS_REPLAYED: ClassVar[str] = "replayed"
    STATUS_SKIPPED: ClassVar[str] = "skipped"

    @property
    def abandon_state(self) -> set[str]:
        """The original's name for :attr:`unless_fired`."""
        return set(self.unless_fired)

    @property
    def can_schedule(self) -> bool:
        """Unstarted: triggers may still apply to it (the original's name)."""
        return self.status is Status.UNSTARTED

    @property
    def log_level(self) -> int:
        """The highest level its task logged (``logging.NOTSET``: none, or
        marked resolved)."""
        return int(self.metadata.get("log_level") or logging.NOTSET)

    @property
    def log_level_name(self) -> str:
        return logging.getLevelName(self.log_level)

    @property
    def name(self) -> str:
        return instance_name(self.task, self.number)

    @property
    def is_resolved(self) -> bool:
        return self.status in RESOLVED

    @property
    def can_run(self) -> bool:
        """Scheduled or unstarted: the instance may still start."""
        return self.status in (Status.UNSTARTED, Status.SCHEDULED)

    @property
    def can_abandon(self) -> bool:
        return self.status is Status.UNSTARTED

    @property
    def can_replay(self) -> bool:
        return self.status is Status.FAILED

    @property
    def can_skip(self) -> bool:
        return self.status is Status.FAILED

    def to_dict(self) -> dict[str, Any]:
        data = {
            "task": self.task,
            "number": self.number,
            "status": self.status.value,
            "kwargs": self.kwargs,
            "result": self.result,
            "metadata": self.metadata,
        }
        if self.unless_fired:
            data["unless_fired"] = self.unless_fired
        if self.awaiting:
            data["awaiting"] = self.awaiting
        return data

    def copy(self) -> Instance:
        """A copy the engine may change: the kwargs and metadata mappings are
        new (their values are replaced, never mutated, by the engine)."""
        return Instance(
            self.task,
            self.number,
            self.status,
            dict(self.kwargs),
            self.result,
            dict(self.metadata),
            self.unless_fired,
            self.awaiting,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        metadata = data.get("metadata") or {}
        started = data.get(START_OVERLAY)
        if started:  # metadata a storage wrote without re-encoding the record
            metadata = {**metadata, **started}
        return cls(
            task=data["task"],
            number=int(data["number"]),
            status=Status(data["status"]),
            kwargs=data.get("kwargs") or {},
            result=data.get("result"),
            metadata=metadata,
            unless_fired=list(data.get("unless_fired") or ()),
            awaiting=list(data.get("awaiting") or ()),
        )

    def __repr__(self) -> str:
        return f"<Instance {self.name} {self.status.value}>"


@dataclass
class TriggerRecord:
    """A trigger that has fired in a session: how often, and its latest kwargs."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": self.kwargs, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TriggerRecord:
        return cls(name=data["name"], kwargs=data.get("kwargs") or {}, count=int(data.get("count", 0)))


@dataclass
class TaskRecord:
    """Per-session bookkeeping of one trigger task."""

    name: str
    #: Number the next instance gets (instances are numbered densely from 0).
    next_number: int = 0
    #: The task's ``unless`` condition held: no instance may start any more.
    abandoned: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "next_number": self.next_number, "abandoned": self.abandoned}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskRecord:
        return cls(
            name=data["name"], next_number=int(data.get("next_number", 0)), abandoned=bool(data.get("abandoned"))
        )


@dataclass
class Snapshot:
    """The records one operation reads. Missing keys mean "not in storage"."""

    triggers: dict[str, TriggerRecord] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)

    def copy(self) -> Snapshot:
        """An independent working copy (records are copied, values shared:
        the engine replaces values, it never mutates them)."""
        return Snapshot(
            triggers={k: replace(v) for k, v in self.triggers.items()},
            tasks={k: replace(v) for k, v in self.tasks.items()},
            instances={k: v.copy() for k, v in self.instances.items()},
        )


@dataclass(frozen=True)
class Transition:
    """An instance changed status (``old`` is None for a new instance)."""

    instance: str
    old: Status | None
    new: Status


@dataclass
class Changes:
    """What an engine operation wants written, and what it made ready."""

    triggers: dict[str, TriggerRecord] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    #: Names of instances that became ``scheduled`` and must be dispatched.
    ready: list[str] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    #: Triggers fired by this operation (the external one and any cascade).
    fired: list[str] = field(default_factory=list)
    #: For an operation firing several events: per event, the instances it scheduled.
    per_event: list[list[str]] = field(default_factory=list)
    #: Unstarted instances with a deadline -> when it passes (storage
    #: indexes them after the commit; see ``engine.expire``).
    deadlines: dict[str, float] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.triggers or self.tasks or self.instances)
