"""pytest fixtures for trigger tasks (loaded through the ``pytest11`` entry
point): ``triggers_app`` (an isolated app on the eager runner and memory
storage) and ``triggers_session`` (a fresh session manager on it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from celery import Celery

from ..session.manager import TriggerManager
from .apps import make_test_app


@pytest.fixture
def triggers_app() -> Iterator[Celery]:
    """A fresh Celery app with celery-triggers, eager runner, memory storage.

    Nothing is shared between tests: configs and sessions die with the app.
    Register tasks on it with ``@triggers_app.task(shared=False)``, or
    override this fixture to return your own app inside
    ``celery_triggers.testing.eager_triggers(app)``.
    """
    app = make_test_app()
    yield app
    app.triggers.reset_storage()


@pytest.fixture
def triggers_session(triggers_app: Celery) -> TriggerManager:
    """A manager for a new session on ``triggers_app``."""
    manager: TriggerManager = triggers_app.triggers.session(f"test-{uuid.uuid4().hex[:12]}")
    return manager
