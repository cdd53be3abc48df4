"""What a session's admin page shows, read through the storage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ...core.analysis import workflow
from ...core.data import display_json
from ...core.errors import TriggersError
from ...core.state import Instance, Status
from ...session.summary import task_statuses
from .actions import manager_for
from .graph import to_svg
from .models import Session

__all__ = ["session_context"]

_TIMES = ("created_at", "scheduled_at", "started_at", "finished_at", "failed_at")


def _when(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return ""
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _row(instance: Instance) -> dict[str, Any]:
    meta = instance.metadata
    return {
        "name": instance.name,
        "status": instance.status.value,
        "kwargs": display_json(instance.kwargs, indent=1),
        "result": "" if instance.result is None else display_json(instance.result, indent=1),
        "task_id": meta.get("task_id", ""),
        "times": [(key.removesuffix("_at"), _when(meta.get(key))) for key in _TIMES if meta.get(key)],
        "exception": f"{meta.get('exc_type', '')}: {meta.get('exc_message', '')}" if meta.get("exc_type") else "",
        "traceback": meta.get("traceback", ""),
        "parent": meta.get("parent", ""),
        "replayed_by": meta.get("replayed_by", ""),
        "can_replay": instance.status is Status.FAILED,
        "can_redispatch": instance.status is Status.SCHEDULED,
        "triggers": sorted(instance.kwargs),
    }


def session_context(session: Session) -> dict[str, Any]:
    """Instances, the coloured workflow and fired triggers of ``session``;
    ``problem`` says why the storage could not be read through the app."""
    try:
        manager = manager_for(session)
        configs, snapshot = manager.overview()
        instances = list(manager.instances.values())
    except TriggersError as exc:
        return {"problem": str(exc), "rows": [], "graph": "", "fired": []}
    statuses = task_statuses(configs, instances)
    fired = {name: record for name, record in snapshot.triggers.items() if record.count > 0}
    return {
        "problem": "",
        "rows": [_row(i) for i in instances],
        "graph": to_svg(workflow(configs), statuses, set(fired)),
        "fired": [(name, r.count, display_json(r.kwargs)) for name, r in sorted(fired.items())],
    }
