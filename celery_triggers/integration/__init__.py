"""Celery integration: extension, decorator, worker bootstep, worker protocol."""
