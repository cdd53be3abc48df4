"""What the commands show, as plain data (for ``--json``) and as tables."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..core.config import TaskConfig
from ..core.data import display_json
from ..core.errors import CorruptSession
from ..core.state import IN_FLIGHT, RESOLVED, Instance, Status
from ..session.manager import TriggerManager
from ..session.summary import URGENCY
from ..storage import StorageBackend
from ..storage.summaries import SessionSummary
from .jsonstream import Doc, Later, Stream, materialize

__all__ = ["INSPECT_SCHEMA", "age", "instance_view", "session_doc", "session_view", "sessions_view", "summary_row"]


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _summary(instance: Instance) -> str:
    meta = instance.metadata
    if meta.get("exc_type") and instance.status in (Status.FAILED, Status.REPLAYED):
        return f"{meta['exc_type']}: {meta.get('exc_message', '')}"[:120]
    if instance.status in (Status.FINISHED, Status.SKIPPED):
        return display_json(instance.result)[:120]
    return ""


#: The version of ``inspect --json``'s layout (docs/inspect-schema.md).
INSPECT_SCHEMA = "celery-triggers.inspect/1"
_STAMPS = ("created_at", "scheduled_at", "started_at", "finished_at", "failed_at")


def instance_view(instance: Instance, awaiting: list[str], now: float) -> dict[str, Any]:
    """One instance as ``inspect --json`` shows it."""
    meta = instance.metadata
    created = meta.get("created_at")
    exception = None
    if meta.get("exc_type"):
        exception = {"type": meta["exc_type"], "module": meta.get("exc_module"), "message": meta.get("exc_message")}
    return {
        "instance": instance.name,
        "status": instance.status.value,
        "kwargs": instance.kwargs,
        "consumed": sorted(instance.kwargs),
        "awaiting": awaiting,
        "result": instance.result,
        "task_id": meta.get("task_id"),
        "hostname": meta.get("hostname"),
        "timestamps": {stamp.removesuffix("_at"): meta.get(stamp) for stamp in _STAMPS},
        "attempts": meta.get("attempts", 0),
        "exception": exception,
        "traceback": meta.get("traceback"),
        "parent": meta.get("parent"),
        "replayed_by": meta.get("replayed_by"),
        "summary": _summary(instance),
        "age_seconds": None if created is None else round(now - float(created), 3),
    }


#: Instances read per storage call by ``inspect``: two batches are held at a time.
BATCH = 500


class _Peek:
    """An iterator of instances whose next one can be looked at."""

    def __init__(self, batches: Iterable[list[Instance]]):
        self._it = (i for batch in batches for i in batch)
        self._head: Instance | None = None

    def peek(self) -> Instance | None:
        if self._head is None:
            self._head = next(self._it, None)
        return self._head

    def take(self, task: str) -> Iterator[Instance]:
        """The next instances while they are ``task``'s."""
        while (head := self.peek()) is not None and head.task == task:
            self._head = None
            yield head


class InFlight:
    """The instances a streamed view found ``scheduled`` or ``running``:
    how many, and the first few by name (for ``inspect --watch``)."""

    SHOWN = 10

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[str] = []

    def add(self, instance: Instance) -> None:
        self.count += 1
        if len(self.shown) < self.SHOWN:
            self.shown.append(f"{instance.name} {instance.status.value}")

    def __str__(self) -> str:
        more = self.count - len(self.shown)
        return ", ".join(self.shown) + (f" and {more} more" if more else "")


def session_doc(
    manager: TriggerManager, now: float | None = None, *, count: int | None = None, in_flight: InFlight | None = None
) -> Doc:
    """The document of ``inspect --json``, every task's instances streamed
    from storage a batch at a time (see :mod:`.jsonstream`): memory does
    not grow with the session. ``count``: how many instances the session
    has (printed first), else counted in storage. ``in_flight`` gathers
    the instances scheduled or running as they stream by.

    Storage is the truth: an instance of a task this app has no config for
    (a task removed since, or declared in a module this process did not
    import) is listed too, under a task marked ``"known": false`` with
    ``"run": null``."""
    now = time.time() if now is None else now
    configs, snapshot = manager.overview()
    backend, uid = manager.storage.backend, manager.uid
    if count is None:
        count = backend.count_instances(uid)
    fired = {name for name, record in snapshot.triggers.items() if record.count > 0}
    stream = _Peek(backend.iter_instances(uid, BATCH))
    unresolved = [0]

    def rows(task: str, config: TaskConfig | None, statuses: set[str]) -> Iterator[dict[str, Any]]:
        for i in stream.take(task):
            statuses.add(i.status.value)
            unresolved[0] += i.status not in RESOLVED
            if in_flight is not None and i.status in IN_FLIGHT:
                in_flight.add(i)
            awaiting = sorted(config.required - set(i.kwargs)) if config and i.status is Status.UNSTARTED else []
            yield instance_view(i, awaiting, now)

    def tasks() -> Iterator[Doc]:
        """Configured and stored tasks merged by name (instances come
        sorted by task)."""
        names = sorted(configs)
        while True:
            head = stream.peek()
            candidates = ([head.task] if head is not None else []) + names[:1]
            if not candidates:
                return
            name = min(candidates)
            if names[:1] == [name]:
                names.pop(0)
            statuses: set[str] = set()
            config = configs.get(name)
            doc = Doc(
                task=name, run=None, known=False, awaiting=[], unless={"triggers": [], "fired": [], "held": False}
            )
            if config is not None:
                record = snapshot.tasks.get(name)
                has_instances = head is not None and head.task == name
                doc.update(
                    run=config.run,
                    known=True,
                    awaiting=[] if has_instances else sorted(config.required - fired),
                    unless={
                        "triggers": list(config.unless),
                        "fired": sorted(set(config.unless) & fired),
                        "held": bool(record and record.abandoned),
                    },
                )
            doc["status"] = Later(functools.partial(_urgent, statuses))
            doc["instances"] = Stream(rows(name, config, statuses))
            yield doc
            for _ in stream.take(name):  # what the reader left of this task's instances
                pass

    triggers = [
        {"trigger": name, "count": record.count, "kwargs": record.kwargs}
        for name, record in sorted(snapshot.triggers.items())
        if record.count > 0
    ]
    return Doc(
        schema=INSPECT_SCHEMA,
        session=uid,
        tasks=Stream(tasks()),
        triggers=triggers,
        instances=count,
        unresolved=Later(lambda: unresolved[0]),
    )


def _urgent(statuses: set[str]) -> str:
    """A task's status: the most urgent of its instances' (``waiting``: none)."""
    return next((status for status in URGENCY if status in statuses), "waiting")


def session_view(manager: TriggerManager, now: float | None = None) -> dict[str, Any]:
    """:func:`session_doc` built in memory (every instance held: for a
    small session, or a caller that needs them all)."""
    view: dict[str, Any] = materialize(session_doc(manager, now, count=0))
    view["instances"] = sum(len(task["instances"]) for task in view["tasks"])
    return view


def summary_row(uid: str, found: SessionSummary | CorruptSession) -> dict[str, Any]:
    """One row of ``sessions``: counts by status, last activity, or why the
    session is corrupt."""
    if isinstance(found, CorruptSession):  # reported as such; the other sessions are listed
        return {"session": uid, "counts": {}, "instances": None, "unresolved": None, "last_activity": None} | {
            "corrupt": str(found)
        }
    return {
        "session": uid,
        "counts": dict(found.counts),
        "instances": found.instances,
        "unresolved": found.unresolved,
        "last_activity": found.last_activity,
        "corrupt": None,
    }


def sessions_view(storage: StorageBackend, uids: list[str]) -> list[dict[str, Any]]:
    """One row per session (:func:`summary_row`), read from the summaries
    storage keeps, or tallied a batch at a time."""
    found = storage.summaries(uids)
    return [summary_row(uid, found[uid]) for uid in uids]
