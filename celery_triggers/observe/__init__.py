"""Observability adapters, an edge: Celery events for Flower and
``celery events``, OpenTelemetry traces, Prometheus metrics.

``celery_triggers.observe.install(app)``, beside ``Triggers(app)`` in the
module every worker and producer imports, registers them through the
package's public extension points (:class:`celery_triggers.Hooks`, Celery's
signals, worker bootsteps); each part switches itself on:

* events (:mod:`.events`): when Celery sends task events (``-E``,
  ``worker_send_task_events``, ``task_send_sent_event``);
* traces (:mod:`.tracing`): when ``opentelemetry-api`` is installed
  (``celery-triggers[otel]``) and the application set an SDK tracer
  provider; otherwise each hook returns at once;
* metrics (:mod:`.metrics`, :mod:`.serve`): when ``prometheus_client`` is
  installed (``celery-triggers[prometheus]``); a worker serves them when
  ``triggers_metrics_port`` is set.

Importing this package imports neither optional library; ``install`` does,
for the parts whose library is present.

May import: every layer below (core, storage, session, producer, worker,
app) and Celery; never another edge.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING

from ..app.extension import Triggers
from ..session.hooks import Hooks

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["install", "installed_parts"]


def _available(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install(app: Celery, *, events: bool = True, traces: bool = True, metrics: bool = True) -> list[str]:
    """Install the observers on ``app`` (which has ``Triggers(app)``), each
    part asked for whose library is present; returns the parts installed.
    Calling it again adds nothing twice."""
    from .events import EventHooks, EventsStep

    ext = Triggers.of(app)
    have = installed_parts(app)
    if events and "events" not in have:
        ext.add_hooks(EventHooks(app))
        app.steps["worker"].add(EventsStep)
    if traces and "traces" not in have and _available("opentelemetry.trace"):
        from . import tracing

        tracing.connect()
        ext.add_hooks(tracing.TracingHooks())
    if metrics and "metrics" not in have and _available("prometheus_client"):
        from .metrics import MetricsHooks
        from .serve import MetricsStep

        ext.add_hooks(MetricsHooks())
        app.steps["worker"].add(MetricsStep)
    return installed_parts(app)


def installed_parts(app: Celery) -> list[str]:
    """Which of ``events``, ``traces`` and ``metrics`` are installed on ``app``."""
    hooks: tuple[Hooks, ...] = Triggers.of(app).hooks
    return sorted({str(part) for h in hooks if (part := getattr(h, "observe_part", None))})
