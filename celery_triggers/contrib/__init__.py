"""Integrations with other frameworks (``celery_triggers.contrib.django``).

An edge: may import every layer; nothing else in the package imports it
(the storage registry names its backends by dotted path)."""
