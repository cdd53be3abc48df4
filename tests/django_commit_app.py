"""A Celery app on ``django-db://<CT_DJANGO_DB>`` (default: the SQLite
database, or "pg") for the fire-on-commit tests, run by a real worker: its
trigger task appends the session UID to ``CT_TEST_DATA/runs.txt``, one
line per body run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery

from celery_triggers import Triggers, current_context, trigger_task

from .django_project import configure_django

configure_django()


def build(alias: str) -> Celery:
    app = Celery(f"ct_commit_{alias}", set_as_current=False)
    app.conf.update(
        triggers_storage=f"django-db://{alias}",
        task_ignore_result=True,
        broker_url=os.environ.get("CT_BROKER", "redis://127.0.0.1:1/0"),
        broker_connection_retry_on_startup=True,
        task_default_queue=f"ct-commit-{alias}",
        worker_prefetch_multiplier=1,
    )
    Triggers(app)

    @trigger_task(after=["paid"], name="t_ship")
    @app.task(name="tests.commit.ship", shared=False)
    def ship(trigger_kwargs: dict[str, Any]) -> str:
        runs = Path(os.environ["CT_TEST_DATA"]) / "runs.txt"
        fd = os.open(runs, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{current_context().session_uid}\n".encode())  # one O_APPEND write
        finally:
            os.close(fd)
        return "shipped"

    return app


app = build(os.environ.get("CT_DJANGO_DB", "default"))
