"""A Celery app for tests that run a real ``celery worker`` subprocess.

Broker: the tests' redis-server (``CT_BROKER``, set by the ``worker``
fixture; kombu's filesystem transport has a read race: see celery_triggers/testing/filesystem.py). Storage:
SQLite under the folder named by ``CT_TEST_DATA``, or ``CT_STORAGE`` when
set (with ``CT_STORAGES``, JSON, as ``triggers_storages``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import task_success

from celery_triggers import Hooks, NotInTriggerTask, TaskContext, Triggers, current_context, trigger_task

from . import params_cases, upgrade_tasks
from .classy_tasks import CONFIGS, TASKS

DATA = Path(os.environ.get("CT_TEST_DATA", "/nonexistent-set-CT_TEST_DATA"))

app = Celery("ct_tests")
app.conf.update(
    broker_url=os.environ.get("CT_BROKER", "redis://127.0.0.1:1/0"),
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_lost_wait=0.5,  # notice a killed pool process quickly (redelivery test)
    triggers_storage=os.environ.get("CT_STORAGE") or f"sqlite:///{DATA / 'triggers.sqlite3'}",
    triggers_storages=json.loads(os.environ.get("CT_STORAGES") or "{}"),
    triggers_sesion_ttl=60,  # a typo on purpose: the worker warns about it
)
if os.environ.get("CT_BROKER_MAX_RETRIES"):  # how soon the start-up check gives up on an unreachable storage
    app.conf.broker_connection_max_retries = int(os.environ["CT_BROKER_MAX_RETRIES"])
Triggers(app)
for task_class in TASKS:  # class-based trigger tasks, the original framework's way
    app.register_task(task_class())
app.triggers.configure(CONFIGS)
app.task(name=params_cases.ECHO, shared=False)(params_cases.echo)
params_cases.declare_all(app)  # withParams made every app-wide way (tests/test_params.py)
upgrade_tasks.declare(app)  # the tasks of the sessions the previous release stored (tests/test_upgrade.py)


@trigger_task(after=["go"], name="t_boom")
@app.task(name="tests.boom")
def boom(trigger_kwargs: dict[str, Any]) -> None:
    raise ValueError(f"boom {trigger_kwargs['go'].get('n')}")


@trigger_task(after=["t_boom"], name="t_afterBoom")
@app.task(name="tests.after_boom")
def after_boom() -> str:
    return "must never run"


@trigger_task(after=["ping", "pong"], name="t_probe")
@app.task(name="tests.probe", bind=True)
def probe(self: Any, trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    context = current_context()
    return {
        "session": context.session_uid,
        "instance": context.instance_name,
        "trigger_kwargs": trigger_kwargs,
        "context_kwargs": context.trigger_kwargs,
        "request_headers": dict(self.request.headers or {}),
        "pid": os.getpid(),
    }


@trigger_task(after=["t_probe"], name="t_contextOnly")
@app.task(name="tests.context_only")
def context_only() -> dict[str, Any]:
    """Takes no trigger_kwargs argument: reads them from the context."""
    return {"seen": current_context().trigger_kwargs}


@trigger_task(after=["retryMe"], name="t_retrying")
@app.task(name="tests.retrying", max_retries=2)
def retrying(context: TaskContext) -> None:
    with context.get_logger_context({"attempt": context.retries}) as log:
        log.warning("upstream flaky, attempt %s", context.retries)
    raise context.retry(exc=ConnectionError("upstream flaky"), cooldown=0.2)


@trigger_task(after=["selfRetry"], name="t_selfRetry")
@app.task(name="tests.self_retry", bind=True, max_retries=3)
def self_retry(self: Any) -> int:
    if self.request.retries < 2:
        raise self.retry(exc=ValueError("not yet"), countdown=0.1)
    return int(self.request.retries)


@trigger_task(after=["echo"], name="t_echo")
@app.task(name="tests.echo", bind=True)
def echo(self: Any, trigger_kwargs: Any = None, context: Any = None) -> None:
    """Writes what it received to ``echo-runs``, one JSON line per run: a
    direct call passes its own ``trigger_kwargs`` / ``context``."""
    try:
        session: str | None = current_context().session_uid
    except NotInTriggerTask:
        session = None
    seen = context if not isinstance(context, TaskContext) else {"session": context.session_uid}
    line = {"id": self.request.id, "trigger_kwargs": trigger_kwargs, "context": seen, "current_session": session}
    _append("echo-runs", json.dumps(line))


class RecordedFires(Hooks):
    """Hooks registered on the worker's app: what this worker process fired
    (cascades), one JSON line per fire in ``hook-fires``."""

    def fired(self, session: Any, trigger: str, kwargs: dict[str, Any], scheduled: list[Any]) -> None:
        line = {"session": session.uid, "trigger": trigger, "scheduled": [i.name for i in scheduled]}
        _append("hook-fires", json.dumps(line))


app.triggers.add_hooks(RecordedFires())


# -- redelivery (acks_late): the pool process dies after the task succeeded and
# cascaded but before the message was acknowledged; the broker redelivers it.


def _append(name: str, line: str) -> None:
    with open(DATA / name, "a") as out:
        out.write(line + "\n")


@trigger_task(after=["crashOnce"], name="t_crashOnce")
@app.task(name="tests.crash_once", acks_late=True, reject_on_worker_lost=True)
def crash_once() -> dict[str, Any]:
    _append("crash-once-runs", str(os.getpid()))
    return {"pid": os.getpid()}


@trigger_task(after=["t_crashOnce"], name="t_afterCrash")
@app.task(name="tests.after_crash")
def after_crash(trigger_kwargs: dict[str, Any]) -> None:
    _append("after-crash-runs", json.dumps(trigger_kwargs))


def _die_before_ack(sender: Any = None, **_: Any) -> None:
    """Connected after celery-triggers' own handler, so the instance has
    finished and cascaded when the process dies (only the first time)."""
    marker = DATA / "crashed-once"
    if getattr(sender, "name", None) == "tests.crash_once" and not marker.exists():
        marker.write_text("1")
        os._exit(1)


task_success.connect(_die_before_ack, weak=False, dispatch_uid="tests.die_before_ack")
