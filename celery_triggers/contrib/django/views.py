"""What a session's admin page shows, read through the storage."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

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


def _zone() -> tuple[tzinfo, str]:
    """The zone the page shows every time in: Django's current one (the
    project's ``TIME_ZONE``), or UTC when the project sets none."""
    from django.conf import settings
    from django.utils import timezone

    if settings.USE_TZ:
        return timezone.get_current_timezone(), timezone.get_current_timezone_name()
    if settings.TIME_ZONE:
        return ZoneInfo(settings.TIME_ZONE), settings.TIME_ZONE
    return UTC, "UTC"


def _when(value: Any, zone: tzinfo) -> str:
    """A stored time (seconds since the epoch, or a model's datetime) in ``zone``."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.astimezone()  # naive: the process's zone, Django's TIME_ZONE
    elif isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, tz=UTC)
    else:
        return ""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _row(instance: Instance, zone: tzinfo) -> dict[str, Any]:
    meta = instance.metadata
    return {
        "name": instance.name,
        "status": instance.status.value,
        "kwargs": display_json(instance.kwargs, indent=1),
        "result": "" if instance.result is None else display_json(instance.result, indent=1),
        "task_id": meta.get("task_id", ""),
        "times": [(key.removesuffix("_at"), _when(meta.get(key), zone)) for key in _TIMES if meta.get(key)],
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
    zone, zone_name = _zone()
    times = {"zone": zone_name, "created": _when(session.created_at, zone), "updated": _when(session.updated_at, zone)}
    try:
        manager = manager_for(session)
        configs, snapshot = manager.overview()
        instances = list(manager.instances.values())
    except TriggersError as exc:
        return {"problem": str(exc), "rows": [], "graph": "", "fired": [], **times}
    statuses = task_statuses(configs, instances)
    fired = {name: record for name, record in snapshot.triggers.items() if record.count > 0}
    return {
        "problem": "",
        "rows": [_row(i, zone) for i in instances],
        "graph": to_svg(workflow(configs), statuses, set(fired)),
        "fired": [(name, r.count, display_json(r.kwargs)) for name, r in sorted(fired.items())],
        **times,
    }
