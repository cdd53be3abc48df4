"""The Celery integration a user writes against: ``Triggers(app)`` (the
extension, :mod:`.extension`), ``@trigger_task`` (:mod:`.decorator`), the
class-based ``TriggerTask`` (:mod:`.task_class`), the table of
``triggers_*`` settings (:mod:`.settings`), and the masking of storage
passwords in Celery's own outputs (:mod:`.censor`).

May import: every layer below (core, storage, session, producer, worker).
"""
