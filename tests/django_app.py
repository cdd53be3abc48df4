"""Celery apps in the tests' Django project, storage ``django-db://default``.

``app`` sends to the tests' Redis broker (``CT_BROKER``, its own queue) and
runs in a real worker for the admin's browser test; ``eager_app`` runs tasks
in-process, for the admin's client tests.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from celery_triggers import Triggers, trigger_task

from .django_project import configure_django

configure_django()


def _make(name: str, **conf: Any) -> Celery:
    app = Celery(name, set_as_current=False)
    app.conf.update(triggers_storage="django-db://default", task_ignore_result=True, **conf)
    Triggers(app)

    @trigger_task(after=["applied"], name="t_score")
    @app.task(name="tests.django.score", shared=False)
    def score(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        if not trigger_kwargs["applied"].get("ok"):
            raise ValueError(f"not ok: {trigger_kwargs['applied']}")
        return {"score": 7}

    @trigger_task(after=["t_score"], name="t_notify")
    @app.task(name="tests.django.notify", shared=False)
    def notify(trigger_kwargs: dict[str, Any]) -> str:
        return f"score {trigger_kwargs['t_score']['score']}"

    return app


app = _make(
    "ct_django",
    broker_url=os.environ.get("CT_BROKER", "redis://127.0.0.1:1/0"),
    broker_connection_retry_on_startup=True,
    task_default_queue="ct-django",
    worker_prefetch_multiplier=1,
)
eager_app = _make("ct_django_eager", broker_url="memory://", triggers_runner="eager")
