"""A Celery app for the fault tests: Redis broker, Redis storage (another
server), a cascade A -> B -> C plus a fan-in D, a task that hangs, and a
class-based task (``TriggerTask``).

Each body appends ``session instance`` to ``$CT_TEST_DATA/runs`` so a test
can count how often each body ran. ``CT_ACKS_LATE=1`` turns on
``task_acks_late`` + ``task_reject_on_worker_lost``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery

from celery_triggers import TaskContext, Triggers, TriggerTask, current_context, trigger_task

DATA = Path(os.environ.get("CT_TEST_DATA", "/nonexistent-set-CT_TEST_DATA"))
ACKS_LATE = os.environ.get("CT_ACKS_LATE") == "1"

if os.environ.get("CT_STORAGE", "").startswith("django-cache://"):  # a local-memory cache, to be refused
    import django
    from django.conf import settings

    settings.configure(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
    django.setup()

app = Celery("ct_faults")
app.conf.update(
    broker_url=os.environ.get("CT_BROKER", "redis://127.0.0.1:1/0"),
    # A short visibility timeout brings back the messages of a killed worker quickly; it
    # must exceed every countdown (Redis broker), so tests that retry use a long one.
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("CT_VISIBILITY", "3")),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    task_acks_late=ACKS_LATE,
    task_reject_on_worker_lost=ACKS_LATE,
    worker_prefetch_multiplier=1,
    worker_lost_wait=0.5,
    triggers_storage=os.environ.get("CT_STORAGE", "redis://127.0.0.1:1/0"),
    triggers_finish_timeout=30,
    triggers_recover_interval=float(os.environ.get("CT_RECOVER_INTERVAL", "0")) or None,
    triggers_recover_older_than=1,
    triggers_heartbeat_interval=os.environ.get("CT_HEARTBEAT", "10"),
    triggers_session_ttl=float(os.environ.get("CT_SESSION_TTL", "0")) or None,
)
Triggers(app)


def _ran(pause: float = 0.0) -> dict[str, Any]:
    context = current_context()
    with open(DATA / "runs", "a") as out:
        out.write(f"{context.session_uid} {context.instance_name}\n")
    if pause:
        time.sleep(pause)
    return {"by": context.instance_name}


@trigger_task(after=["go"], name="t_a")
@app.task(name="faults.a")
def a() -> dict[str, Any]:
    return _ran(0.01)


@trigger_task(after=["t_a"], name="t_b")
@app.task(name="faults.b")
def b() -> dict[str, Any]:
    return _ran(0.01)


@trigger_task(after=["t_b"], name="t_c")
@app.task(name="faults.c")
def c() -> dict[str, Any]:
    return _ran(0.01)


@trigger_task(after=["t_a", "t_b", "t_c"], name="t_d")
@app.task(name="faults.d")
def d(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    _ran()
    return {"from": sorted(trigger_kwargs)}


@trigger_task(after=["hang"], name="t_hang")
@app.task(name="faults.hang")
def hang() -> str:
    (DATA / "hang.pid").write_text(str(os.getpid()))
    if not (DATA / "hang.released").exists():
        time.sleep(60)  # killed by the test long before
    _ran()
    return "done"


@trigger_task(after=["slow"], name="t_slow")
@app.task(name="faults.slow")
def slow() -> dict[str, Any]:
    return _ran(float(os.environ.get("CT_SLOW", "0")))


@trigger_task(after=["t_slow"], name="t_after_slow")
@app.task(name="faults.after_slow")
def after_slow() -> dict[str, Any]:
    return _ran()


@trigger_task(after=["revoke"], name="t_revoke")
@app.task(name="faults.revoke")
def revoke() -> dict[str, Any]:
    """Takes scripting away from the storage's user before it finishes (an
    operator's ACL change mid-run): its finish is refused, not unreachable."""
    import redis

    result = _ran()
    client = redis.Redis.from_url(os.environ["CT_STORAGE"])
    client.execute_command("ACL", "SETUSER", "default", "-@scripting")  # type: ignore[no-untyped-call]  # untyped in redis-py
    client.close()
    return result


class Classy(TriggerTask):
    """A class-based task, the original framework's way."""

    name = "faults.classy"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return _ran()


app.register_task(Classy())
app.triggers.configure({"t_classy": {"after": ["classy"], "run": Classy.name}})
