"""The session API: :class:`~.manager.TriggerManager` runs each operation
as one storage transaction of the pure engine, dispatches what became ready
after the commit and announces it (signals, hooks); inspection, the
operator's actions, the context a running trigger task sees, and a
session's tasks summed up for the edges that draw them (:mod:`.summary`).

May import: :mod:`celery_triggers.core`, :mod:`celery_triggers.storage`, and
Celery's signal and exception classes. What it needs from the extension
above it (runners, settings, configs) comes through :class:`.host.Host`.
"""
