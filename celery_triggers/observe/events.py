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

How they travel: built by the event dispatcher's rules
(``celery.events.Event``: type, timestamp, hostname, pid, Lamport clock)
where they happen, then handed to this process's outbox, a thread that
publishes what gathered, at most every :data:`FLUSH_INTERVAL` seconds (or
at :data:`FLUSH_SIZE` events), as one message (a list of events, which
Celery's receivers unpack, as a worker's buffered task events), with a
producer from the app's producer pool, Celery's own connections (the
exchange declared once per connection). So a fire never waits for the
broker on account of its events: no round trip of its own, whatever the
transport. The outbox is flushed when the process exits (a pool process
too). Like Celery's events, they are for monitoring: a failure to send is
logged, never reaches the operation that committed, and what a killed
process had not flushed is lost.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from celery import Celery, bootsteps
from celery.events import Event
from celery.signals import worker_process_shutdown
from celery.utils.time import utcoffset

from ..session.extension import extension_of
from ..session.hooks import Hooks

if TYPE_CHECKING:
    from ..core.state import Instance, Status
    from ..session.manager import TriggerManager

__all__ = ["FIRED", "FLUSH_INTERVAL", "FLUSH_SIZE", "INSTANCE", "EventHooks", "EventsStep", "Outbox"]

logger = logging.getLogger("celery_triggers")

#: The event types, in Celery's ``<group>-<name>`` form (group ``trigger``).
FIRED = "trigger-fired"
INSTANCE = "trigger-instance"
#: Seconds the outbox gathers events before it sends them.
FLUSH_INTERVAL = 0.1
#: Events that make the outbox send at once (and the most in one message).
FLUSH_SIZE = 200


class Outbox:
    """This process's events not sent yet, and the thread that sends them
    (one per process: a forked process makes its own, and never sends what
    it inherited)."""

    def __init__(self, send: Any):
        self.send = send
        self.pid = os.getpid()
        self.pending: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="celery-triggers-events", daemon=True)
        self.thread.start()
        atexit.register(self.flush)
        worker_process_shutdown.connect(self._at_shutdown, weak=False)

    def put(self, events: list[dict[str, Any]]) -> None:
        with self.lock:
            self.pending.extend(events)
            full = len(self.pending) >= FLUSH_SIZE
        if full:
            self.wake.set()

    def flush(self) -> None:
        """Send what is pending (in this process only)."""
        while os.getpid() == self.pid:
            with self.lock:
                batch, self.pending = self.pending[:FLUSH_SIZE], self.pending[FLUSH_SIZE:]
            if not batch:
                return
            self.send(batch)

    def _loop(self) -> None:
        while True:
            self.wake.wait(FLUSH_INTERVAL)
            self.wake.clear()
            try:
                self.flush()
            except Exception:  # never the thread's end: the next batch goes out
                logger.exception("celery-triggers: trigger events not sent")

    def _at_shutdown(self, **_: Any) -> None:
        self.flush()


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
        self._dispatcher: Any = None
        self._pid = 0
        self._outbox: Outbox | None = None
        self._outbox_lock = threading.Lock()

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
        self.outbox().put([event])

    def outbox(self) -> Outbox:
        """This process's outbox (made on first use, after a fork)."""
        outbox = self._outbox
        if outbox is None or outbox.pid != os.getpid():
            with self._outbox_lock:
                outbox = self._outbox
                if outbox is None or outbox.pid != os.getpid():
                    outbox = self._outbox = Outbox(self.send)
        return outbox

    def dispatcher(self) -> Any:
        """This process's event dispatcher (Celery's, disabled: it only
        lends its exchange, serializer and clock; the producer is the pool's)."""
        if self._dispatcher is None or self._pid != os.getpid():
            self._dispatcher = self.app.events.Dispatcher(enabled=False, hostname=self.hostname)
            self._pid = os.getpid()
        return self._dispatcher

    def send(self, events: list[dict[str, Any]]) -> None:
        """Publish ``events`` as one message now (the outbox's thread does)."""
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
