"""Prometheus metrics (``celery-triggers[prometheus]``, prometheus_client).

* ``celery_triggers_fires_total{trigger}``: committed fires, cascades included;
* ``celery_triggers_instance_transitions_total{task,status}``: committed
  status changes, by the task and the status reached;
* ``celery_triggers_queue_wait_seconds``: histogram of the time from
  ``scheduled`` to ``running`` (at each start a worker records);
* ``celery_triggers_instances{status}``: instances in storage by status, as
  the recovery sweep read them (the worker that sweeps sets it, once per
  sweep, at no extra read: :data:`celery_triggers.worker.sweeper.swept`).

They live in prometheus_client's default registry, created on first use in
each process: a producer serves them with
``prometheus_client.start_http_server(9100)``; a worker with
``triggers_metrics_port`` (:mod:`.serve`: prefork pool processes
aggregated by prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..core.state import Status
from ..session.hooks import Hooks

if TYPE_CHECKING:
    from ..core.state import Instance
    from ..session.manager import TriggerManager

__all__ = ["BUCKETS", "Metrics", "MetricsHooks", "metrics"]

#: Queue wait buckets, in seconds: a busy queue waits minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


class Metrics:
    """The metric objects (in the registry given, by default prometheus_client's)."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client as prom

        where = {"registry": registry} if registry is not None else {}
        self.fires = prom.Counter("celery_triggers_fires", "Committed fires, cascades included.", ["trigger"], **where)
        self.transitions = prom.Counter(
            "celery_triggers_instance_transitions",
            "Committed status changes of trigger-task instances, by task and the status reached.",
            ["task", "status"],
            **where,
        )
        self.queue_wait = prom.Histogram(
            "celery_triggers_queue_wait_seconds",
            "Seconds from an instance's scheduled to its running.",
            buckets=BUCKETS,
            **where,
        )
        self.instances = prom.Gauge(
            "celery_triggers_instances",
            "Instances in storage by status, as the last recovery sweep read them.",
            ["status"],
            multiprocess_mode="mostrecent",
            **where,
        )
        #: Labelled children by label values: prometheus_client's ``labels()``
        #: checks and looks up its arguments at every call (about 4 us).
        self._fires: dict[str, Any] = {}
        self._transitions: dict[tuple[str, str], Any] = {}

    def count_fire(self, trigger: str) -> None:
        child = self._fires.get(trigger)
        if child is None:
            child = self._fires[trigger] = self.fires.labels(trigger=trigger)
        child.inc()

    def count_transition(self, task: str, status: str) -> None:
        child = self._transitions.get((task, status))
        if child is None:
            child = self._transitions[task, status] = self.transitions.labels(task=task, status=status)
        child.inc()

    def census(self, counts: dict[str, int]) -> None:
        """Set the gauge from a sweep's counts (statuses it did not see: 0)."""
        for status in Status:
            self.instances.labels(status=status.value).set(counts.get(status.value, 0))


_lock = threading.Lock()
_metrics: Metrics | None = None


def metrics() -> Metrics:
    """This process's metrics in the default registry, created on first use
    (in a pool process after the fork, so that multiprocess mode writes
    them to that process's files)."""
    global _metrics
    found = _metrics
    if found is not None:
        return found
    with _lock:
        if _metrics is None:
            _metrics = Metrics()
        return _metrics


class MetricsHooks(Hooks):
    """Counts fires and transitions, times the queue wait."""

    #: Which part of :func:`celery_triggers.observe.install` it is.
    observe_part = "metrics"

    def fired(self, session: TriggerManager, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        metrics().count_fire(trigger)

    def instance_changed(self, session: TriggerManager, instance: Instance, old: Status | None, new: Status) -> None:
        found = metrics()
        found.count_transition(instance.task, new.value)
        if old is Status.SCHEDULED and new is Status.RUNNING:
            started = instance.metadata.get("started_at")
            scheduled = instance.metadata.get("scheduled_at")
            if isinstance(started, (int, float)) and isinstance(scheduled, (int, float)):
                found.queue_wait.observe(max(0.0, float(started) - float(scheduled)))
