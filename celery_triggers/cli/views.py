"""What the commands show, as plain data (for ``--json``) and as tables."""

from __future__ import annotations

import time
from typing import Any

from ..core.data import display_json
from ..core.errors import CorruptSession
from ..core.state import RESOLVED, Instance, Status
from ..session.manager import TriggerManager
from ..session.summary import by_task, task_status
from ..storage import StorageBackend

__all__ = ["INSPECT_SCHEMA", "age", "instance_view", "session_view", "sessions_view"]


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


def session_view(manager: TriggerManager, now: float | None = None) -> dict[str, Any]:
    """Every task and instance of a session, with what each still awaits
    and every fired trigger (the layout of ``inspect --json``).

    Storage is the truth: an instance of a task this app has no config for
    (a task removed since, or declared in a module this process did not
    import) is listed too, under
    a task marked ``"known": false`` with ``"run": null``."""
    now = time.time() if now is None else now
    configs, snapshot = manager.overview()
    instances = manager.instances
    fired = {name for name, record in snapshot.triggers.items() if record.count > 0}
    stored = by_task(instances.values())
    tasks = [_unknown_task(name, stored[name], now) for name in set(stored) - set(configs)]
    for name, config in configs.items():
        mine = stored.get(name, [])
        record = snapshot.tasks.get(name)
        unless = {
            "triggers": list(config.unless),
            "fired": sorted(set(config.unless) & fired),
            "held": bool(record and record.abandoned),
        }
        rows = [
            instance_view(
                i,
                sorted(config.required - set(i.kwargs)) if i.status is Status.UNSTARTED else [],
                now,
            )
            for i in mine
        ]
        tasks.append(
            {
                "task": name,
                "run": config.run,
                "known": True,
                "status": task_status(mine) or "waiting",
                "awaiting": [] if mine else sorted(config.required - fired),
                "unless": unless,
                "instances": rows,
            }
        )
    tasks.sort(key=lambda task: str(task["task"]))
    triggers = [
        {"trigger": name, "count": record.count, "kwargs": record.kwargs}
        for name, record in sorted(snapshot.triggers.items())
        if record.count > 0
    ]
    unresolved = sum(1 for i in instances.values() if i.status not in RESOLVED)
    return {
        "schema": INSPECT_SCHEMA,
        "session": manager.uid,
        "tasks": tasks,
        "triggers": triggers,
        "instances": len(instances),
        "unresolved": unresolved,
    }


def _unknown_task(name: str, mine: list[Instance], now: float) -> dict[str, Any]:
    """A task with stored instances that this app has no config for: what
    it runs, awaits and is held by is unknown here."""
    return {
        "task": name,
        "run": None,
        "known": False,
        "status": task_status(mine) or "waiting",
        "awaiting": [],
        "unless": {"triggers": [], "fired": [], "held": False},
        "instances": [instance_view(i, [], now) for i in mine],
    }


def sessions_view(storage: StorageBackend, uids: list[str]) -> list[dict[str, Any]]:
    """One row per session: counts by status, last activity, or why it is
    corrupt (the instances of many sessions are read in batches)."""
    rows: list[dict[str, Any]] = []
    for uid, found in storage.instances_many(uids).items():
        if isinstance(found, CorruptSession):  # reported as such; the other sessions are listed
            rows.append(
                {"session": uid, "counts": {}, "instances": None, "unresolved": None, "last_activity": None}
                | {"corrupt": str(found)}
            )
            continue
        counts: dict[str, int] = {}
        last = 0.0
        for instance in found.values():
            counts[instance.status.value] = counts.get(instance.status.value, 0) + 1
            stamps = [v for k, v in instance.metadata.items() if k.endswith("_at") and isinstance(v, (int, float))]
            last = max([last, *stamps])
        rows.append(
            {
                "session": uid,
                "counts": dict(sorted(counts.items())),
                "instances": sum(counts.values()),
                "unresolved": sum(n for s, n in counts.items() if Status(s) not in RESOLVED),
                "last_activity": last or None,
                "corrupt": None,
            }
        )
    return rows
