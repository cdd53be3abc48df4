"""The storage contract: load and atomically commit one session's records.

A backend implements a handful of primitives on :class:`SessionTxn` (load
the records an operation needs, write the records it changed: :mod:`.txn`)
and a few session-lifecycle methods on :class:`StorageBackend` (here). The
base classes own everything else: JSON encoding, error wrapping, session
binding (:class:`SessionStorage`), retention (rules in :mod:`.retention`),
and the optimistic retry loop for backends that detect conflicts at commit time.
"""

from __future__ import annotations

import abc
import asyncio
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, TypeVar

from ..core import engine
from ..core.engine import Needs
from ..core.errors import Conflict, CorruptSession, StorageError, StorageUnavailable, UnknownInstance
from ..core.state import Instance, is_internal
from .retention import all_resolved, purge_cutoff
from .summaries import SessionSummary, tally
from .txn import Prefetch, SessionTxn, check_uid

#: ``Job`` and ``StorageBackend`` are this module's (``SessionSummary``: what
#: :meth:`StorageBackend.summaries` returns); the others are the
#: contract's names as celery-triggers 0.1.0 spelled them, still imported
#: from here by backends written against it.
__all__ = ["Conflict", "Job", "SessionStorage", "SessionSummary", "SessionTxn", "StorageBackend", "check_uid"]

R = TypeVar("R")
#: One transaction of :meth:`StorageBackend.run_many`: (session UID, operation, prefetch).
Job = tuple[str, Callable[[SessionTxn], Any], Prefetch]


class StorageBackend(abc.ABC):
    """Where sessions live. One backend object serves every session."""

    #: How many times :meth:`atomic` re-runs an operation after a conflict.
    max_retries = 200
    #: Seconds a session lives after its last change once nothing in it is
    #: in flight (None: no expiry). Backends that expire apply :meth:`expiry`.
    session_ttl: float | None = None
    #: What this backend's client raises when the storage cannot be reached
    #: (connection refused or reset, a timeout): raised as
    #: :class:`StorageUnavailable`, the one storage error a worker retries.
    #: Anything else (a refused command, a malformed URL, a refused
    #: transaction) is a plain :class:`StorageError`: retrying would not
    #: help. Declared as kombu's transports declare ``connection_errors``.
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, url: str = ""):
        self.url = url

    def is_connection_error(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by this backend's client, says the storage
        could not be reached: one of :attr:`connection_errors` (a backend
        whose client raises one class for both kinds says more)."""
        return isinstance(exc, self.connection_errors)

    def storage_error(self, exc: BaseException, message: str) -> StorageError:
        """``message`` as the error to raise for ``exc``:
        :class:`StorageUnavailable` for a connection error, else
        :class:`StorageError`."""
        return (StorageUnavailable if self.is_connection_error(exc) else StorageError)(message)

    def transaction(self, uid: str, prefetch: Prefetch = (), cached: Any = None) -> AbstractContextManager[SessionTxn]:
        """A transaction on session ``uid``: commits on normal exit (raises
        :class:`Conflict` when a concurrent writer won: :meth:`run` re-runs
        the operation). The primitive of backends that lock or check at
        commit; an optimistic backend that runs its operations another way
        overrides :meth:`run` and :meth:`read` instead (Redis).

        ``prefetch`` names instances, and (task, trigger) pairs of waiting
        instances, the operation will read; a backend may fetch them with
        its first read to save a round trip. ``cached`` is the
        ``after_commit`` of this process's previous transaction on the
        session; a backend that checks versions at commit may start from it
        instead of reading (a stale one just fails the commit, and the
        operation re-runs on fresh data).
        """
        raise NotImplementedError(f"{type(self).__name__} implements neither transaction() nor run()")

    @abc.abstractmethod
    def instances(self, uid: str) -> dict[str, Instance]:
        """Every instance of the session (for inspection; may be large)."""

    @abc.abstractmethod
    def sessions(self) -> list[str]:
        """UIDs of the stored sessions."""

    @abc.abstractmethod
    def delete_session(self, uid: str) -> None: ...

    def expiry(self, in_flight: bool, uid: str = "") -> float | None:
        """The TTL a commit gives a session, the same rule on every backend
        that expires: none while an instance is scheduled or running (a
        session must not vanish under a running task), none for
        celery-triggers' own bookkeeping (the storage's epoch, the workers'
        heartbeats); else :attr:`session_ttl` seconds from this change."""
        return None if in_flight or not self.session_ttl or is_internal(uid) else self.session_ttl

    def purge(
        self, older_than: float, *, now: float | None = None, resolved_only: bool = False, dry_run: bool = False
    ) -> list[str]:
        """Delete every session with no instance scheduled or running whose
        last change is more than ``older_than`` seconds old; returns their
        UIDs. ``resolved_only``: only sessions whose instances are all
        resolved (none waiting for a trigger either). ``dry_run``: delete
        nothing, return what would go. Each check-and-delete is atomic: a
        session that changed meanwhile is kept. The retention policy of
        backends without expiry (SQLite, memory), and a sweep for those with
        one."""
        cutoff = purge_cutoff(older_than, now)
        uids = [uid for uid in self.sessions() if not is_internal(uid)]
        if resolved_only:  # read in batches; a change after this read is newer than cutoff: the session is kept
            found = self.instances_many(uids)
            uids = [u for u in uids if all_resolved(found[u])]
        return [uid for uid in uids if self.delete_if_idle(uid, cutoff, dry_run=dry_run)]

    def delete_if_idle(self, uid: str, cutoff: float, *, dry_run: bool = False) -> bool:
        """Delete session ``uid`` if nothing in it is scheduled or running
        and its last change is older than ``cutoff`` (a time), atomically;
        True if it did (with ``dry_run``: if it would)."""
        raise StorageError(f"{type(self).__name__} does not support purge (it has no delete_if_idle)")

    def instances_many(self, uids: list[str]) -> dict[str, dict[str, Instance] | CorruptSession]:
        """:meth:`instances` of several sessions (a corrupt one maps to its
        error); a backend may batch the reads."""
        out: dict[str, dict[str, Instance] | CorruptSession] = {}
        for uid in uids:
            try:
                out[uid] = self.instances(uid)
            except CorruptSession as exc:
                out[uid] = exc
        return out

    # -- reading at scale (the operator commands) -----------------------------------
    # Generic here, from the methods above (each holds a whole session, or the list of
    # every session); a backend pages through its storage instead.

    def iter_sessions(self, batch: int = 500) -> Iterator[list[str]]:
        """The UIDs of :meth:`sessions`, about ``batch`` at a time, in no
        particular order: a backend may page through its storage (Redis:
        ``SCAN``) so that no list of every session is held."""
        uids = self.sessions()
        for start in range(0, len(uids), batch):
            yield uids[start : start + batch]

    def session_exists(self, uid: str) -> bool:
        """Whether session ``uid`` is stored (one cheap read on the
        built-in backends)."""
        return check_uid(uid) in self.sessions()

    def iter_instances(self, uid: str, batch: int = 1000) -> Iterator[list[Instance]]:
        """Every instance of the session in the order ``manager.instances``
        gives them (by task name, then number), at most ``batch`` at a time:
        a backend reads them a batch at a time, so that memory does not grow
        with the session. Batches are read one after the other: a session
        changing meanwhile may show some instances before and others after
        a change (each batch is consistent)."""
        found = sorted(self.instances(uid).values(), key=lambda i: (i.task, i.number))
        for start in range(0, len(found), batch):
            yield found[start : start + batch]

    def count_instances(self, uid: str) -> int:
        """How many instances session ``uid`` has (SQL: a ``COUNT``; Redis
        and the Django cache: the summary their states keep), without reading
        them where the backend can."""
        found = self.summaries([uid], activity=False)[uid]
        if isinstance(found, CorruptSession):
            raise found
        return found.instances

    def summaries(self, uids: Sequence[str], *, activity: bool = True) -> dict[str, SessionSummary | CorruptSession]:
        """Each session's :class:`SessionSummary` (instances by status, last
        activity), or the :class:`CorruptSession` that stops reading it; an
        unknown session has an empty summary. ``activity`` False: the caller
        needs no last activity (a backend may then count without reading
        records). Here tallied from :meth:`iter_instances`; the key-value
        backends read the summary their states keep."""
        out: dict[str, SessionSummary | CorruptSession] = {}
        for uid in uids:
            try:
                out[uid] = tally(self.iter_instances(uid))
            except CorruptSession as exc:
                out[uid] = exc
        return out

    # -- the deadline index (see :mod:`.deadlines`) -------------------------
    def index_deadlines(self, uid: str, due: Mapping[str, float]) -> None:
        """Index instances of session ``uid`` (name -> due time) so that
        :meth:`due_deadlines` finds them; an instance indexed again moves."""
        raise StorageError(f"{type(self).__name__} does not index deadlines")

    def due_deadlines(self, now: float, limit: int = 500) -> list[tuple[str, str, float]]:
        """Up to ``limit`` entries ``(uid, instance name, due)`` due at
        ``now`` or before, earliest first, without reading the others
        (the workers' deadline sweep; an entry stays until dropped)."""
        raise StorageError(f"{type(self).__name__} does not index deadlines")

    def drop_deadline(self, uid: str, name: str, due: float) -> None:
        """Remove the entry of ``name`` in ``uid`` if it is still due at
        ``due`` (an entry indexed again meanwhile stays)."""
        raise StorageError(f"{type(self).__name__} does not index deadlines")

    def process_local_reason(self) -> str | None:
        """Why this storage cannot be shared by several processes (a Celery
        worker refuses to start on it), or None."""
        return None

    def ping(self) -> None:
        """Check that the storage answers, with one cheap read (the worker
        calls it at start-up; it never lists sessions)."""
        self.instances("celery-triggers:ping")

    def after_caller_commit(self, send: Callable[[], None]) -> bool:
        """Defer ``send`` (an operation's messages) until the caller's own
        database transaction commits, when the operation just joined it
        (the Django database storage): True if deferred, False to send now."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release connections (called at worker shutdown)."""

    def read_transaction(self, uid: str, prefetch: Prefetch = ()) -> AbstractContextManager[SessionTxn]:
        """A consistent read that takes no write lock where the backend can
        avoid one (SQLite: a deferred transaction; Django cache API: no
        lock). By default, :meth:`transaction` (which writes nothing when
        nothing changed)."""
        return self.transaction(uid, prefetch)

    def read(self, uid: str, operation: Callable[[SessionTxn], R], prefetch: Prefetch = ()) -> R:
        """Run a read-only ``operation`` (it may load, never write)."""
        check_uid(uid)
        with self.read_transaction(uid, prefetch) as txn:
            txn.read_only = True
            return operation(txn)

    def atomic(self, uid: str, operation: Callable[[SessionTxn], R], prefetch: Prefetch = ()) -> R:
        """Run ``operation`` in a transaction, re-running it on conflict."""
        return self.run(uid, operation, prefetch)[0]

    def run(
        self, uid: str, operation: Callable[[SessionTxn], R], prefetch: Prefetch = (), cached: Any = None
    ) -> tuple[R, Any]:
        """:meth:`atomic`, also returning the transaction's ``after_commit``."""
        check_uid(uid)
        start_from = cached
        for attempt in range(self.max_retries):
            try:
                with self.transaction(uid, prefetch, start_from) as txn:
                    result = operation(txn)
                return result, txn.after_commit
            except Conflict as exc:
                # The first re-runs start at once from the backend's fresh read, if it sent one;
                # later ones back off with jitter, then read (data held while sleeping goes stale).
                if exc.fresh is not None and attempt < 2:
                    start_from = exc.fresh
                    continue
                start_from = False
                if attempt > 0:
                    time.sleep(random.uniform(0, min(0.0001 * 2**attempt, 0.02)))  # noqa: S311 - jitter, not crypto
        raise Conflict(f"session {uid!r}: gave up after {self.max_retries} conflicting attempts")

    def run_many(self, jobs: Sequence[Job]) -> list[Any]:
        """:meth:`atomic` for each job (sessions all different), in its own
        transaction: one result per job, or the exception that refused it
        (a :class:`TriggersError`; any other is a bug, returned too so that
        the caller can settle what the other jobs committed before raising
        it). Here one after the other; a backend may share round trips
        between sessions (Redis pipelines)."""
        out: list[Any] = []
        for uid, operation, prefetch in jobs:
            try:
                out.append(self.atomic(uid, operation, prefetch))
            except Exception as exc:
                out.append(exc)
        return out

    async def arun_many(self, jobs: Sequence[Job]) -> list[Any]:
        """:meth:`run_many` from asyncio code: here in a worker thread
        (:meth:`run_sync`), so the event loop never waits on storage;
        natively async on Redis."""
        return await self.run_sync(self.run_many, list(jobs))

    async def run_sync(self, fn: Callable[..., R], *args: Any) -> R:
        """Run blocking ``fn(*args)``, which uses this storage, off the event
        loop: in a worker thread (``asyncio.to_thread``); the Django
        database storage uses the thread Django runs synchronous code in."""
        return await asyncio.to_thread(fn, *args)

    def start(
        self, uid: str, name: str, token: str, now: float, *, track: bool, metadata: Mapping[str, Any]
    ) -> tuple[Instance, Instance, dict[str, Any], Any]:
        """The worker's start, one atomic step (see :func:`engine.start`):
        returns the instance before and after, the session's own configs,
        and the ``after_commit`` for the finish that follows.

        Generic here (a transaction); a backend may do it in one round trip.
        """
        meta = dict(metadata)

        def op(txn: SessionTxn) -> tuple[Instance, Instance, dict[str, Any]]:
            snapshot = txn.load(Needs(instances=frozenset({name})))
            changes = engine.start(snapshot, name, now, token, track=track, **meta)
            txn.write(changes)
            before = snapshot.instances[name]
            return before, changes.instances.get(name, before), txn.read_configs()

        (before, after, configs), after_commit = self.run(uid, op, (name,))
        return before, after, configs, after_commit

    def instance(self, uid: str, name: str) -> Instance:
        """One instance, read alone (a read-only transaction)."""
        found = self.read(uid, lambda txn: txn.load(Needs(instances=frozenset({name}))).instances.get(name), (name,))
        if found is None:
            raise UnknownInstance(f"no instance {name!r} in session {uid!r}")
        return found

    def bind(self, uid: str) -> SessionStorage:
        return SessionStorage(self, uid)

    def __repr__(self) -> str:
        from .urls import mask_url

        return f"<{type(self).__name__} {mask_url(self.url)}>"


class SessionStorage:
    """A backend bound to one session UID: what a :class:`TriggerManager` takes."""

    def __init__(self, backend: StorageBackend, uid: str):
        self.backend = backend
        self.uid = check_uid(uid)
        self._after_commit: Any = None

    def atomic(self, operation: Callable[[SessionTxn], R], prefetch: Prefetch = (), *, resume: bool = False) -> R:
        """Run ``operation`` atomically. With ``resume``, the backend may start
        from what this object's previous transaction left (see
        :meth:`StorageBackend.transaction`): the worker's finish after its
        start, in one round trip on Redis when nothing else changed."""
        result, self._after_commit = self.backend.run(
            self.uid, operation, prefetch, self._after_commit if resume else None
        )
        return result

    def read(self, operation: Callable[[SessionTxn], R], prefetch: Prefetch = ()) -> R:
        """Run a read-only ``operation`` (see :meth:`StorageBackend.read`)."""
        return self.backend.read(self.uid, operation, prefetch)

    def start(
        self, name: str, token: str, now: float, *, track: bool, metadata: Mapping[str, Any]
    ) -> tuple[Instance, Instance, dict[str, Any]]:
        """:meth:`StorageBackend.start` on this session; the finish that
        follows may resume from it."""
        before, after, configs, self._after_commit = self.backend.start(
            self.uid, name, token, now, track=track, metadata=metadata
        )
        return before, after, configs

    @property
    def instances(self) -> dict[str, Instance]:
        """Every instance of the session, by name (a fresh read)."""
        return self.backend.instances(self.uid)

    def instance(self, name: str) -> Instance:
        return self.backend.instance(self.uid, name)

    def delete(self) -> None:
        self.backend.delete_session(self.uid)

    def __repr__(self) -> str:
        return f"<SessionStorage {self.uid!r} on {self.backend!r}>"
