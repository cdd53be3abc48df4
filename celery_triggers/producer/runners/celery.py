"""The default runner: one Celery message per ready instance."""

from __future__ import annotations

import logging

from ...core.dispatch import LOCAL_ALIAS, Dispatch
from ...core.errors import ConfigurationError, DispatchError
from .base import TaskRunner, message_kwargs

__all__ = ["CeleryTaskRunner"]

logger = logging.getLogger(__name__)


class CeleryTaskRunner(TaskRunner):
    """Sends ``apply_async`` (or ``send_task`` for a task this process does
    not know) with the session and instance in the message headers."""

    name = "celery"
    sends_messages = True

    def dispatch(self, items: list[Dispatch]) -> None:
        local = sorted({i.session_uid for i in items if (i.storage_alias or "").startswith(LOCAL_ALIAS)})
        if local:
            raise ConfigurationError(
                f"session(s) {', '.join(map(repr, local))} live in a storage workers cannot be told about: "
                "name it in the triggers_storages setting ({'alias': 'scheme://...'}) on producers and workers "
                "(the instances stay 'scheduled'; `celery triggers recover` re-sends them once it is named)"
            )
        failed: list[str] = []
        errors: list[str] = []
        for item in items:
            countdown = item.instance.metadata.get("countdown")
            options = {"headers": item.headers, "task_id": item.task_id, "countdown": countdown}
            try:
                task = self.app.tasks.get(item.config.run)
                if task is not None:
                    task.apply_async(kwargs=message_kwargs(task), **options)
                else:  # unknown here: the worker passes trigger_kwargs if accepted
                    self.app.send_task(item.config.run, kwargs={}, **options)
            except Exception as exc:  # the broker refused: tell the caller
                logger.error(
                    "celery-triggers: could not send %s of session %r: %r", item.instance.name, item.session_uid, exc
                )
                failed.append(item.instance.name)
                errors.append(f"{item.instance.name}: {exc!r}")
        if failed:
            raise DispatchError(
                "broker refused the message(s) of "
                + "; ".join(errors)
                + " (the instances stay 'scheduled' and can be re-dispatched)",
                failed,
            )
