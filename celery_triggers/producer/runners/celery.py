"""The default runner: one Celery message per ready instance.

On an AMQP broker (RabbitMQ) the messages are published with publisher
confirms (kombu's ``confirm_publish``): each publish waits for the broker's
acknowledgement, so a message the broker refuses or loses before taking it
(a full queue, a size limit, a broker failing over) raises here, and the
instance stays ``scheduled`` with a :class:`DispatchError`, instead of being
lost silently after ``fire`` returned (about 1 ms more per message on
loopback: ``triggers_publish_confirms = False`` trades that safety for the
time). The confirming connection is this
runner's own (one per thread and process), apart from Celery's producer
pool, whose settings stay the application's.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import Celery

from ...core.dispatch import LOCAL_ALIAS, Dispatch
from ...core.errors import ConfigurationError, DispatchError
from ...session.host import installed
from .base import TaskRunner, message_kwargs

__all__ = ["CeleryTaskRunner"]

logger = logging.getLogger(__name__)


class CeleryTaskRunner(TaskRunner):
    """Sends ``apply_async`` (or ``send_task`` for a task this process does
    not know) with the session and instance in the message headers."""

    name = "celery"
    sends_messages = True

    def __init__(self, app: Celery):
        super().__init__(app)
        self._local = threading.local()
        self._amqp: bool | None = None

    @property
    def confirms(self) -> bool:
        """Whether messages go out with publisher confirms (an AMQP broker,
        and ``triggers_publish_confirms``, on by default)."""
        if self._amqp is None:
            host = installed(self.app)
            wanted = host is None or bool(host.setting("triggers_publish_confirms"))
            self._amqp = wanted and self.app.connection_for_write().transport.driver_type == "amqp"
        return self._amqp

    def _producer(self) -> Any:
        """This thread's confirming producer, or None (not an AMQP broker)."""
        if not self.confirms:
            return None
        held = getattr(self._local, "producer", None)
        if held is None or self._local.pid != os.getpid():  # a forked process opens its own
            options = {**(self.app.conf.broker_transport_options or {}), "confirm_publish": True}
            connection = self.app.connection_for_write(transport_options=options)
            held = self._local.producer = self.app.amqp.Producer(connection)
            self._local.pid = os.getpid()
        return held

    def _drop_producer(self) -> None:
        held = getattr(self._local, "producer", None)
        self._local.producer = None
        if held is not None:
            try:
                held.connection.close()
            except Exception:  # noqa: S110 - it failed already; a new one is opened next time
                pass

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
                options["producer"] = self._producer()
                task = self.app.tasks.get(item.config.run)
                if task is not None:
                    task.apply_async(kwargs=message_kwargs(task), **options)
                else:  # unknown here: the worker passes trigger_kwargs if accepted
                    self.app.send_task(item.config.run, kwargs={}, **options)
            except Exception as exc:  # the broker refused: tell the caller
                self._drop_producer()
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
