"""The worker side, a module per Celery seam: inside the task, the protocol
that starts, runs and finishes an instance (:mod:`.protocol`); around it, in
the worker's main process, the bootstep (:mod:`.bootstep`) and recovery of
what a crash or an outage left behind (:mod:`.recovery`).

May import: core, storage, session, producer, and Celery. The extension is
reached through :class:`celery_triggers.session.extension.Extension`, never imported.
"""
