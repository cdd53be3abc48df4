"""Integrations with other frameworks (``celery_triggers.contrib.django``)."""
