"""The project's Celery app, as in Celery's "First steps with Django"."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")  # CELERY_TRIGGERS_STORAGE etc.
app.autodiscover_tasks()
