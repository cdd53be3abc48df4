"""OpenTelemetry traces: one trace per cascade, across processes.

Spans (with the application's SDK ``TracerProvider``; without one, the
hooks return at once and nothing is recorded):

* ``triggers.fire <trigger>``: a committed fire (external or a cascade),
  from the start of its operation to its announcements, around the
  messages of what it scheduled (attributes ``triggers.session``,
  ``triggers.trigger``, ``triggers.scheduled``);
* ``triggers.run <instance>``: a worker's run of an instance's message,
  start, body and finish (attributes ``triggers.session``,
  ``triggers.instance``, ``triggers.trigger`` (its task, the trigger its
  finish fires), ``triggers.status`` (the last status it reached),
  ``messaging.message.id`` (the Celery task id)).

The trace context travels in the messages' headers, injected by Celery's
``before_task_publish`` signal with the global propagator (W3C
``traceparent`` by default). With ``opentelemetry-instrumentation-celery``
too, its publish span injects first or overwrites the same keys (never a
second copy), and a run span is the child of its ``run/<task>`` span: the
chain stays fire -> publish -> run -> cascade fire -> publish -> run.

Only ``opentelemetry-api`` is needed (``celery-triggers[otel]``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from celery.signals import before_task_publish
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import ProxyTracerProvider, SpanKind

from ..core.dispatch import HEADER_SESSION
from ..session.hooks import Hooks

if TYPE_CHECKING:
    from ..core.state import Instance, Status
    from ..session.manager import TriggerManager

__all__ = ["TracingHooks", "connect", "inject_headers"]

_UID = "celery_triggers.observe.tracing"


def _version() -> str:
    from .. import __version__

    return __version__


def recording() -> bool:
    """Whether the application configured a tracer provider (the API's
    default is a proxy that records nothing until one is set)."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


class _RequestGetter(Getter[Any]):
    """Reads a propagator's keys from a Celery task request: custom message
    headers are request attributes on a worker, ``request.headers`` in
    ``Task.apply``."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = getattr(carrier, key, None)
        if value is None:
            headers = getattr(carrier, "headers", None)
            value = headers.get(key) if isinstance(headers, dict) else None
        if value is None:
            return None
        return [value] if isinstance(value, str) else [str(v) for v in value]

    def keys(self, carrier: Any) -> list[str]:
        return []


_GETTER = _RequestGetter()


class TracingHooks(Hooks):
    """Opens the spans (see the module's doc)."""

    #: Which part of :func:`celery_triggers.observe.install` it is.
    observe_part = "traces"

    def __init__(self) -> None:
        self.tracer = trace.get_tracer("celery_triggers", _version())
        #: The spans this thread has open, innermost last: (instance or None, span).
        self._local = threading.local()

    def _open(self) -> list[tuple[str | None, Any]]:
        spans: list[tuple[str | None, Any]] | None = getattr(self._local, "spans", None)
        if spans is None:
            spans = self._local.spans = []
        return spans

    def firing(self, session: TriggerManager, triggers: list[str], started: float) -> Any:
        if not recording():
            return None
        distinct = list(dict.fromkeys(triggers))
        name = "triggers.fire " + distinct[0] if len(distinct) == 1 else "triggers.fire"
        attributes = {"triggers.session": session.uid, "triggers.trigger": ", ".join(distinct)}
        return self._span(name, None, attributes, int(started * 1e9), None, SpanKind.INTERNAL)

    def running(self, session_uid: str, instance: str, task: Any) -> Any:
        if not recording():
            return None
        current = trace.get_current_span().get_span_context()
        # Inside another run span (opentelemetry-instrumentation-celery's): its child.
        parent = None if current.is_valid else propagate.extract(task.request, getter=_GETTER)
        attributes = {
            "triggers.session": session_uid,
            "triggers.instance": instance,
            "triggers.trigger": instance.rpartition("#")[0],
            "messaging.message.id": str(task.request.id),
        }
        kind = SpanKind.INTERNAL if current.is_valid else SpanKind.CONSUMER
        return self._span("triggers.run " + instance, instance, attributes, None, parent, kind)

    @contextmanager
    def _span(
        self, name: str, instance: str | None, attributes: dict[str, Any], start: int | None, parent: Any, kind: Any
    ) -> Iterator[None]:
        spans = self._open()
        with self.tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=attributes, start_time=start
        ) as span:
            spans.append((instance, span))
            try:
                yield
            finally:
                spans.pop()

    def instance_changed(self, session: TriggerManager, instance: Instance, old: Status | None, new: Status) -> None:
        spans = getattr(self._local, "spans", None)
        if not spans:
            return
        for name, span in reversed(spans):
            if name == instance.name:
                span.set_attribute("triggers.status", new.value)
                return

    def fired(self, session: TriggerManager, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        spans = getattr(self._local, "spans", None)
        if spans and spans[-1][0] is None:  # the fire's own span
            spans[-1][1].set_attribute("triggers.scheduled", [i.name for i in scheduled])


def inject_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """``before_task_publish``: the current trace context into a trigger
    message's headers, unless a propagator's keys are there already
    (opentelemetry-instrumentation-celery injected its publish span's)."""
    if not headers or HEADER_SESSION not in headers or not recording():
        return
    if any(field in headers for field in propagate.get_global_textmap().fields):
        return
    propagate.inject(headers)


def connect() -> None:
    """Connect :func:`inject_headers` (once per process)."""
    before_task_publish.connect(inject_headers, weak=False, dispatch_uid=_UID)
