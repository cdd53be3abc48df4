"""The Celery app ``python -m benchmarks.operations --big`` runs the
operator commands with (``celery -A benchmarks.ops_app triggers ...``):
storage from ``OPS_STORAGE``, the two trigger tasks its data was written
for. Imports only celery-triggers' public API, so that an older checkout
of the package can run it too (``--code``)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from celery_triggers import Triggers, trigger_task

app = Celery("ops", set_as_current=False)
app.conf.update(broker_url="memory://", triggers_storage=os.environ.get("OPS_STORAGE", "memory://"))
Triggers(app)


@trigger_task(after=["go"], name="t_step")
@app.task(name="ops.step")
def step() -> dict[str, Any]:
    return {}


@trigger_task(after=["ready"], name="t_item", and_every="item")
@app.task(name="ops.item")
def item() -> dict[str, Any]:
    return {}
