"""Celery apps for tests: an isolated one, or yours switched to eager."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery

from ..app.extension import Triggers

__all__ = ["eager_triggers", "make_test_app"]


def make_test_app(name: str = "celery-triggers-test", **conf: Any) -> Celery:
    """A fresh app (not ``current_app``): eager runner, memory storage."""
    app = Celery(name, set_as_current=False)
    app.conf.update(
        broker_url="memory://", triggers_storage="memory://", triggers_runner="eager", task_ignore_result=True
    )
    app.conf.update(conf)
    Triggers(app)
    return app


@contextmanager
def eager_triggers(app: Celery, storage: str = "memory://", runner: str = "eager") -> Iterator[Celery]:
    """Run ``app``'s trigger tasks in-process on fresh storage, then restore
    its settings::

        with eager_triggers(proj.app) as app:
            app.triggers.fire("s1", "startSession")
    """
    ext = Triggers(app)
    saved = {key: app.conf.get(key) for key in ("triggers_storage", "triggers_runner")}
    app.conf.update(triggers_storage=storage, triggers_runner=runner)
    ext.reset_storage()
    try:
        yield app
    finally:
        ext.reset_storage()
        app.conf.update(saved)
