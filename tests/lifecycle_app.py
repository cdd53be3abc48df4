"""A Celery app for the lifecycle tests: Redis broker (its visibility
timeout left at an hour, as in production), Redis storage, short lease
and sweep intervals from the environment, and tasks that hit a hard or
soft time limit, block until released, or take a while.

Each body appends ``session instance token pid`` to ``$CT_TEST_DATA/runs``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery

from celery_triggers import Triggers, current_context, trigger_task

DATA = Path(os.environ.get("CT_TEST_DATA", "/nonexistent-set-CT_TEST_DATA"))

app = Celery("ct_lifecycle")
app.conf.update(
    broker_url=os.environ.get("CT_BROKER", "redis://127.0.0.1:1/0"),
    broker_transport_options={"visibility_timeout": 3600},
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_lost_wait=0.5,
    triggers_storage=os.environ.get("CT_STORAGE", "redis://127.0.0.1:1/0"),
    triggers_heartbeat_interval=os.environ.get("CT_HEARTBEAT", "0.5"),
    triggers_recover_interval=os.environ.get("CT_RECOVER_INTERVAL", "1"),
    triggers_recover_older_than=os.environ.get("CT_OLDER_THAN", "3"),
)
Triggers(app)


def ran() -> None:
    context = current_context()
    with open(DATA / "runs", "a") as out:
        out.write(f"{context.session_uid} {context.instance_name} {context.task_id} {os.getpid()}\n")


def released(uid: str, limit: float = 60.0) -> None:
    """Block until the test writes ``release-<session>`` (or ``limit`` s)."""
    deadline = time.monotonic() + limit
    while not (DATA / f"release-{uid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@trigger_task(after=["hard"], name="t_hard")
@app.task(name="lifecycle.hard", time_limit=1)
def hard() -> None:
    ran()
    time.sleep(30)


@trigger_task(after=["soft"], name="t_soft")
@app.task(name="lifecycle.soft", soft_time_limit=0.5)
def soft() -> None:
    ran()
    time.sleep(30)


@trigger_task(after=["block"], name="t_block")
@app.task(name="lifecycle.block")
def block() -> dict[str, Any]:
    ran()
    released(current_context().session_uid)
    return {"released": True}


@trigger_task(after=["blockLate"], name="t_blockLate")
@app.task(name="lifecycle.block_late", acks_late=True, reject_on_worker_lost=True)
def block_late() -> dict[str, Any]:
    ran()
    released(current_context().session_uid)
    return {"released": True}


@trigger_task(after=["t_blockLate"], name="t_afterBlockLate")
@app.task(name="lifecycle.after_block_late")
def after_block_late() -> None:
    ran()


@trigger_task(after=["healthy"], name="t_healthy")
@app.task(name="lifecycle.healthy")
def healthy() -> str:
    ran()
    time.sleep(float(os.environ.get("CT_HEALTHY", "20")))
    return "done"


@trigger_task(after=["batch"], and_every="item", name="t_item")
@app.task(name="lifecycle.item")
def item() -> None:
    ran()
    time.sleep(0.5)
