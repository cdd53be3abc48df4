"""The metrics' labelled children, kept per label values: every count
lands on its own labels, however often and in whatever order."""

from __future__ import annotations

import prometheus_client


def test_counts_land_on_their_own_labels() -> None:
    from celery_triggers.observe.metrics import Metrics

    registry = prometheus_client.CollectorRegistry()
    metrics = Metrics(registry)
    for trigger in ("go", "stop", "go", "go"):
        metrics.count_fire(trigger)
    for task, status in (("t_a", "running"), ("t_a", "finished"), ("t_b", "running"), ("t_a", "running")):
        metrics.count_transition(task, status)

    def value(name: str, **labels: str) -> float | None:
        found: float | None = registry.get_sample_value(name, labels)
        return found

    assert value("celery_triggers_fires_total", trigger="go") == 3
    assert value("celery_triggers_fires_total", trigger="stop") == 1
    assert value("celery_triggers_instance_transitions_total", task="t_a", status="running") == 2
    assert value("celery_triggers_instance_transitions_total", task="t_a", status="finished") == 1
    assert value("celery_triggers_instance_transitions_total", task="t_b", status="running") == 1
    assert value("celery_triggers_instance_transitions_total", task="t_b", status="finished") is None
