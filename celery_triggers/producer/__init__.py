"""The producer side: how ready instances are executed (the runners: one
Celery message each, or in-process for tests) and how many events are fired
at once (:mod:`.bulk`: ``fire_many``, ``afire``, ``afire_many``).

May import: core, storage, session.
"""
