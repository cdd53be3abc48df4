"""The Django project. Importing it creates the Celery app (Celery's Django
guide), so ``shared_task`` and celery-triggers find it."""

from .celery import app as celery_app

__all__ = ("celery_app",)
