"""The worker side, a module per Celery seam. Inside the task, the
protocol that starts, runs and finishes an instance (:mod:`.protocol`,
reading the message's headers with :mod:`.headers`). Around it, in the
worker's main process: the bootstep that checks settings and storage
(:mod:`.bootstep`); the lifecycle handlers of Celery's signals and the
lease keeper's bootstep (:mod:`.lifecycle`, :mod:`.leases`); the recovery
sweeper's bootstep (:mod:`.sweeper`) and the rules it applies
(:mod:`.recovery`); a storage that lost data (:mod:`.epochs`).

May import: core, storage, session, producer, and Celery. The extension is
reached through :class:`celery_triggers.session.extension.Extension`, never
imported.
"""
