"""A session's tasks summed up for people: each task's most urgent status
among its instances, and the colour each status is drawn in.

Both edges that draw a session use it, the ``celery triggers`` command
(its tables and ``graph``) and the Django admin (its inline SVG); it lives
here because an edge never imports another.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.state import Instance

__all__ = ["FIRED_COLOUR", "STATUS_COLOURS", "URGENCY", "by_task", "task_status", "task_statuses"]

#: When a task has several instances, the most urgent status names it.
URGENCY = ["failed", "running", "scheduled", "unstarted", "finished", "skipped", "replayed", "abandoned"]

#: Fill colour per status (also used for the aggregate status of a task).
STATUS_COLOURS = {
    "finished": "#b7e4c7",
    "failed": "#f4a6a6",
    "running": "#ffe08a",
    "scheduled": "#a8d8f0",
    "unstarted": "#e9ecef",
    "abandoned": "#d3c4e3",
    "replayed": "#d3c4e3",
    "skipped": "#d3c4e3",
}

#: External triggers: fired ones filled, the others dashed.
FIRED_COLOUR = "#495057"


def by_task(instances: Iterable[Instance]) -> dict[str, list[Instance]]:
    """The instances of each task, in the order given."""
    found: dict[str, list[Instance]] = {}
    for instance in instances:
        found.setdefault(instance.task, []).append(instance)
    return found


def task_status(instances: list[Instance]) -> str | None:
    """The most urgent status among ``instances`` (None: no instance)."""
    statuses = {i.status.value for i in instances}
    for status in URGENCY:
        if status in statuses:
            return status
    return None


def task_statuses(tasks: Iterable[str], instances: Iterable[Instance]) -> dict[str, str]:
    """Each task's most urgent status among its instances (the graph's
    colour), for the tasks that have an instance."""
    stored = by_task(instances)
    found = {task: task_status(stored.get(task, [])) for task in tasks}
    return {task: status for task, status in found.items() if status}
