"""Load the app's project before a command touches storage, as a worker does.

A worker imports the app's task modules through
``app.loader.import_default_modules()``, which first sends Celery's
``import_modules`` signal. Celery's Django fix-up (installed on an app
created while ``DJANGO_SETTINGS_MODULE`` is set) answers that signal with
``django.setup()``, and ``app.autodiscover_tasks()`` imports each Django
app's ``tasks`` module on it. Only the worker, beat, ``celery shell`` and
``celery report`` call it: Celery's other sub-commands talk to the broker
and never need the project's models, so on them, and on ours, Django was
never set up, and ``django-db://`` (the ORM) could not be read.

``celery triggers`` calls it too, once per command: the command's app then
knows the trigger tasks its workers know, and a Django project is set up
(also when ``DJANGO_SETTINGS_MODULE`` is set but the fix-up was not
installed, e.g. it was set after the app was created). A storage that needs
Django settings where there are none is one clear line naming
``DJANGO_SETTINGS_MODULE``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import click

from ..storage import mask_url

__all__ = ["check_storage", "load_project"]

_SETTINGS = "DJANGO_SETTINGS_MODULE"


def load_project(app: Any) -> None:
    """Import the app's task modules and set Django up as a worker would."""
    settings_module = os.environ.get(_SETTINGS)
    failures: tuple[type[Exception], ...] = (ImportError, *_django_errors())
    try:
        app.loader.import_default_modules()
        if settings_module:
            _setup_django()
    except failures as exc:
        where = f" (with {_SETTINGS}={settings_module!r})" if settings_module else ""
        raise click.ClickException(f"cannot load the app's project{where}: {type(exc).__name__}: {exc}") from None


def check_storage(storage_url: str) -> None:
    """A Django storage (``storage_url``) needs the project's settings."""
    if _scheme(storage_url).startswith("django-"):
        _require_django_settings(storage_url)


def _django_errors() -> tuple[type[Exception], ...]:
    try:
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        return ()
    return (ImproperlyConfigured,)


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme
    except ValueError:
        return ""


def _setup_django() -> None:
    """``django.setup()`` unless done (Celery's fix-up did it, or the
    project's own code); nothing when Django is not installed."""
    try:
        import django
        from django.apps import apps
    except ImportError:
        return
    if not apps.ready:
        django.setup()


def _require_django_settings(storage_url: str) -> None:
    try:
        from django.conf import settings
    except ImportError:
        return  # the storage's own error says which extra to install
    if not settings.configured:
        raise click.ClickException(
            f"storage {mask_url(storage_url)} is a Django project's: set {_SETTINGS} to its settings module "
            f"(e.g. {_SETTINGS}=proj.settings celery -A proj triggers ...)"
        )
    _setup_django()
