"""Integrations with other frameworks (``celery_triggers.contrib.django``).

An edge: may import every layer below the edges, no other edge; nothing
else in the package imports it but :mod:`celery_triggers.compat`, which
re-exports the original framework's ``CacheStorageBackend`` (the storage
registry names the Django backends by dotted path)."""
