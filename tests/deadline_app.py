"""A Celery app for the deadline tests on real workers: Redis broker and
Redis storage from the environment, the deadline sweep at its default
interval (1 s), and a shipment that must be ready within ``CT_WITHIN``
seconds (2) of its first trigger, else ``shipmentLate`` fires and cascades
(``t_late`` -> ``t_escalate``)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from celery_triggers import Triggers, trigger_task

app = Celery("ct_deadlines")
app.conf.update(
    broker_url=os.environ.get("CT_BROKER", "redis://127.0.0.1:1/0"),
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    triggers_storage=os.environ.get("CT_STORAGE", "redis://127.0.0.1:1/0"),
)
Triggers(app)

WITHIN = float(os.environ.get("CT_WITHIN", "2"))


@trigger_task(after=["paid", "shipped"], within=WITHIN, on_timeout="shipmentLate")
@app.task(name="deadlines.ship")
def ship(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"tracking": "T-" + str(trigger_kwargs["paid"].get("order"))}


@trigger_task(after=["shipmentLate"])
@app.task(name="deadlines.late")
def late(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"late": trigger_kwargs["shipmentLate"]}


@trigger_task(after=[late])
@app.task(name="deadlines.escalate")
def escalate(trigger_kwargs: dict[str, Any]) -> str:
    return f"escalated {trigger_kwargs['t_late']['late']['instance']}"
