"""Celery integration: extension, decorator, worker bootstep, signal handlers."""
