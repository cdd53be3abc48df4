"""Trigger events through Celery's event stream, beside its task events.

``trigger-fired`` (``uid``, ``trigger``, ``scheduled``: the instance names
it scheduled) for every committed fire, cascades included, and
``trigger-instance`` (``uid``, ``instance``, ``task``, ``status``,
``task_id``) for every committed status change. A receiver
(``app.events.Receiver(conn, handlers={"*": ...})``, Flower, ``celery
events --dump``) gets them as it gets task events.

They are sent when Celery sends task events from this process: in a worker
started with ``-E`` (or ``worker_send_task_events``), as the worker had it
at start-up; anywhere with ``task_send_sent_event = True``. Otherwise
nothing is built or sent.

How they travel, as Celery sends its own ``task-sent``: built by the
event dispatcher's rules (``celery.events.Event``: type, timestamp,
hostname, pid, Lamport clock) and published on the events exchange with a
producer from the app's producer pool, the connection its task messages
use (no new connection, the exchange declared once per connection). What
one operation announces (a fire's ``trigger-fired`` and the status changes
it made) goes out as one message, a list of events, which Celery's
receivers unpack (``<group>.multi``, as a worker's buffered task events).
A failure to send is logged and never reaches the operation that
committed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from celery import Celery, bootsteps
from celery.events import Event
from celery.utils.time import utcoffset

from ..session.extension import extension_of
from ..session.hooks import Hooks

if TYPE_CHECKING:
    from ..core.state import Instance, Status
    from ..session.manager import TriggerManager

__all__ = ["FIRED", "INSTANCE", "EventHooks", "EventsStep"]

logger = logging.getLogger("celery_triggers")

#: The event types, in Celery's ``<group>-<name>`` form (group ``trigger``).
FIRED = "trigger-fired"
INSTANCE = "trigger-instance"


class EventHooks(Hooks):
    """Sends trigger events for one app (see the module's doc)."""

    #: Which part of :func:`celery_triggers.observe.install` it is.
    observe_part = "events"

    def __init__(self, app: Celery):
        self.app = app
        #: Set by the worker's bootstep before the pool forks: whether the
        #: worker sends task events (``-E``), and its node name.
        self.worker_events: bool | None = None
        self.hostname: str | None = None
        self._local = threading.local()
        self._dispatcher: Any = None
        self._pid = 0

    @property
    def enabled(self) -> bool:
        """Whether Celery sends task events from this process."""
        return bool(self.worker_events) or bool(self.app.conf.task_send_sent_event)

    # -- hooks ----------------------------------------------------------------
    def instance_changed(self, session: TriggerManager, instance: Instance, old: Status | None, new: Status) -> None:
        if not self.enabled:
            return
        task_id = instance.metadata.get("task_id")
        fields = {
            "uid": session.uid,
            "instance": instance.name,
            "task": instance.task,
            "status": new.value,
            "task_id": str(task_id) if task_id else None,
        }
        self._add(INSTANCE, fields)

    def fired(self, session: TriggerManager, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        if self.enabled:
            self._add(FIRED, {"uid": session.uid, "trigger": trigger, "scheduled": [i.name for i in scheduled]})

    def firing(self, session: TriggerManager, triggers: list[str], started: float) -> Any:
        """Collect what the fire announces, and send it as one message."""
        return self._batch() if self.enabled else None

    # -- sending --------------------------------------------------------------
    @contextmanager
    def _batch(self) -> Iterator[None]:
        stack = self._stack()
        stack.append([])
        try:
            yield
        finally:
            events = stack.pop()
            if events:
                self._send(events)

    def _stack(self) -> list[list[dict[str, Any]]]:
        stack: list[list[dict[str, Any]]] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _add(self, type_: str, fields: dict[str, Any]) -> None:
        dispatcher = self.dispatcher()
        event = Event(
            type_,
            hostname=dispatcher.hostname,
            utcoffset=utcoffset(),
            pid=dispatcher.pid,
            clock=dispatcher.clock.forward(),
            **fields,
        )
        stack = self._stack()
        if stack:
            stack[-1].append(event)
        else:
            self._send([event])

    def dispatcher(self) -> Any:
        """This process's event dispatcher (Celery's, disabled: it only
        lends its exchange, serializer and clock; the producer is the pool's)."""
        if self._dispatcher is None or self._pid != os.getpid():
            self._dispatcher = self.app.events.Dispatcher(enabled=False, hostname=self.hostname)
            self._pid = os.getpid()
        return self._dispatcher

    def _send(self, events: list[dict[str, Any]]) -> None:
        dispatcher = self.dispatcher()
        body: Any = events[0] if len(events) == 1 else events
        routing_key = events[0]["type"].replace("-", ".") if len(events) == 1 else "trigger.multi"
        try:
            with self.app.producer_or_acquire() as producer:
                producer.publish(
                    body,
                    routing_key=routing_key,
                    exchange=dispatcher.exchange.name,
                    declare=[dispatcher.exchange],
                    serializer=dispatcher.serializer,
                    headers=dispatcher.headers,
                    delivery_mode=dispatcher.delivery_mode,
                    retry=False,
                )
        except Exception as exc:  # an extension never breaks its host: the operation committed
            logger.warning("celery-triggers: could not send %d trigger event(s): %r", len(events), exc)


class EventsStep(bootsteps.Step):  # type: ignore[misc]  # celery is untyped
    """Tells the app's :class:`EventHooks` whether this worker sends task
    events, and its node name, before the pool forks (its processes
    inherit both)."""

    label = "celery-triggers events"

    def __init__(self, parent: Any, **kwargs: Any):
        super().__init__(parent, **kwargs)
        ext = extension_of(parent.app)
        for hooks in ext.hooks if ext is not None else ():
            if isinstance(hooks, EventHooks):
                hooks.worker_events = bool(parent.task_events)
                hooks.hostname = parent.hostname
