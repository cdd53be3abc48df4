"""Finding the project's Celery app and installing the extension on it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from kombu.utils.imports import symbol_by_name

from ...session.host import installed

__all__ = ["celery_app", "install"]


def celery_app() -> Any:
    """The project's Celery app: ``settings.CELERY_TRIGGERS_APP`` (a dotted
    path, ``"proj.celery:app"``), else Celery's default app (the one
    ``proj/celery.py`` created, imported by ``proj/__init__.py`` as Celery's
    Django guide says), else None."""
    path = getattr(settings, "CELERY_TRIGGERS_APP", None)
    if path:
        return symbol_by_name(path)  # type: ignore[no-untyped-call]  # kombu is untyped
    from celery import Celery, _state

    # Not get_current_app(): it would make up a fallback app when the
    # project has none yet.
    for app in (getattr(_state._tls, "current_app", None), _state.default_app):
        if isinstance(app, Celery):
            return app
    return None


def install() -> Any:
    """Install the extension on the project's Celery app (idempotent);
    return the app, or None if the project has none yet."""
    from ...app.extension import Triggers

    app = celery_app()
    if app is None:
        return None
    if installed(app) is None:
        Triggers(app)
    return app
