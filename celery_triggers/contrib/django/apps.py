"""The Django app: installs celery-triggers on the project's Celery app."""

from __future__ import annotations

from django.apps import AppConfig


class CeleryTriggersConfig(AppConfig):
    name = "celery_triggers.contrib.django"
    label = "celery_triggers"
    verbose_name = "Celery triggers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .integration import install

        install()
