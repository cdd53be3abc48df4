"""A third-party runner, registered through an entry point by a test."""

from __future__ import annotations

from celery_triggers.producer.runners import Dispatch, TaskRunner

SENT: list[tuple[str, str, dict]] = []  # type: ignore[type-arg]


class RecordingRunner(TaskRunner):
    """Records what it would execute (stands for e.g. an AWS Lambda runner)."""

    name = "recording"

    def dispatch(self, items: list[Dispatch]) -> None:
        SENT.extend((item.instance.name, item.config.run, item.trigger_kwargs) for item in items)
