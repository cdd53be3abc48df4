"""The pure core: trigger semantics as plain data in, plain data out.

Directives and task configs (:mod:`.config`), session state as records
(:mod:`.state`), the engine that applies a fire, finish, fail, replay, skip
or override to a snapshot of those records (:mod:`.engine`), what each
operation reads (:mod:`.needs`, :mod:`.operations`), static analysis of a
configuration (:mod:`.analysis`), the message an instance is dispatched as
(:mod:`.dispatch`), the JSON rules for everything stored or sent
(:mod:`.data`) and the typed errors (:mod:`.errors`).

May import: the standard library only. No Celery, no storage, no I/O: the
time is passed in. Everything above imports from here.
"""
