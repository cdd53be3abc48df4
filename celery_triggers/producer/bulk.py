"""Firing many events, and firing from asyncio code.

``fire_many`` fires the events of each session in one transaction, in
order, and reports each event's outcome: a failing event (bad name, bad
kwargs, storage refusal) is reported with its typed error and does not stop
the others; on Redis the sessions' transactions share round trips.
``afire``/``afire_many`` do the same without blocking an event loop (Django
async views, FastAPI): natively with ``redis.asyncio`` on Redis, in a worker
thread elsewhere, and dispatch in a worker thread; concurrent ``afire``
calls are gathered into one ``afire_many``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, cast

from ..core.errors import InvalidKwargs, InvalidName, TriggersError
from ..core.state import Instance
from ..session.extension import Extension
from ..session.manager import EachPlan, TriggerManager
from ..session.typos import CallSite, call_site, warnings_at
from ..storage.base import Job
from .collector import collection_paused
from .runners import resolve_runner_class

logger = logging.getLogger(__name__)

__all__ = ["FireResult", "afire", "afire_many", "defer_fire", "fire_many"]

#: One event: (session UID, trigger name[, kwargs[, idempotency key]]).
Event = Sequence[Any]


@dataclass(frozen=True)
class FireResult:
    """The outcome of one event of :func:`fire_many`."""

    session: Any
    trigger: Any
    scheduled: list[Instance] = field(default_factory=list)
    error: TriggersError | None = None
    #: The event's idempotency key was used already: it changed nothing, and
    #: ``scheduled`` is what the first fire with that key scheduled.
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def _unpack(number: int, event: Any) -> tuple[Any, Any, Mapping[str, Any] | None, Any]:
    if isinstance(event, (str, bytes)) or not isinstance(event, Sequence) or len(event) not in (2, 3, 4):
        raise InvalidKwargs(
            f"event #{number} must be (session, trigger), (session, trigger, kwargs) or "
            f"(session, trigger, kwargs, key), got {event!r}"
        )
    return event[0], event[1], event[2] if len(event) > 2 else None, event[3] if len(event) == 4 else None


Sessions = dict[str, list[tuple[int, str, Mapping[str, Any] | None, Any]]]


def _grouped(events: Iterable[Event]) -> tuple[list[FireResult | None], Sessions]:
    """The events by session, in order; malformed ones answered already."""
    results: list[FireResult | None] = []
    sessions: Sessions = {}
    for number, event in enumerate(events):
        results.append(None)
        try:
            session, trigger, kwargs, key = _unpack(number, event)
        except TriggersError as exc:
            results[number] = FireResult(None, None, [], exc)
            continue
        if not isinstance(session, str):
            results[number] = FireResult(
                session, trigger, [], InvalidName(f"event #{number}: {session!r} is not a UID")
            )
            continue
        sessions.setdefault(session, []).append((number, trigger, kwargs, key))
    return results, sessions


def _record(
    results: list[FireResult | None], uid: str, items: list[tuple[int, str, Any, Any]], outcomes: Sequence[Any]
) -> None:
    for (number, trigger, _, _), outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, TriggersError):
            results[number] = FireResult(uid, trigger, [], outcome)
        else:  # the Fired list itself: ``afire`` hands it on, with ``duplicate`` and ``wait``
            results[number] = FireResult(uid, trigger, outcome, duplicate=bool(getattr(outcome, "duplicate", False)))


class _Bulk:
    """One bulk fire split at storage: every session's transaction body
    (:meth:`TriggerManager.plan_each`), run together by the storage
    (:meth:`StorageBackend.run_many`: pipelined on Redis), then each
    session's commit settled (signals, dispatch, hooks) in event order.
    Planning and settling pause Python's cyclic garbage collector
    (:mod:`.collector`): a batch's many live objects made its collections
    cost more than half of a 10,000-session batch."""

    def __init__(self, ext: Extension, events: Iterable[Event], sites: Sequence[CallSite] | None = None):
        with collection_paused():  # asyncio: no await inside, the event loop runs nothing else meanwhile
            self._plan(ext, events, sites)

    def _plan(self, ext: Extension, events: Iterable[Event], sites: Sequence[CallSite] | None) -> None:
        self.ext = ext
        self.results, self.sessions = _grouped(events)
        self.plans: dict[str, tuple[TriggerManager, EachPlan]] = {}
        max_bytes = ext.max_kwargs_bytes  # settings read once per batch, not once per session
        try:
            session = ext.binder()
        except TriggersError as exc:  # no storage to be had: each event says why, as a bad UID does
            session = _refusing(exc)
        for uid, items in self.sessions.items():
            try:
                manager = session(uid)
            except TriggersError as exc:  # a bad UID: its events only
                _record(self.results, uid, items, [exc] * len(items))
                continue
            events_of = [item[1:] for item in items]
            if sites is None:
                self.plans[uid] = (manager, manager.plan_each(events_of, max_bytes))
                continue
            # Planning runs no user code: its warnings point at the line that fired the session's first event.
            with warnings_at(sites[items[0][0]]):
                self.plans[uid] = (manager, manager.plan_each(events_of, max_bytes))
        self.jobs: list[Job] = [(uid, plan.body, plan.prefetch) for uid, (_, plan) in self.plans.items() if plan.body]

    def settle(self, outcomes: list[Any]) -> list[FireResult]:
        """Each session's outcome, in order. A bug (an exception that is not
        a :class:`TriggersError`) in a session's transaction, or one raised
        by a ``_post_fire`` hook, is raised after every other session was
        settled: what they committed is still dispatched.

        Consumes the batch: its plans and ``outcomes`` are dropped before
        the collector resumes, which would otherwise walk every one of
        them once more (a tenth of a 10,000-session batch)."""
        with collection_paused():
            try:
                return self._settle(outcomes)
            finally:
                self.plans, self.jobs, self.sessions = {}, [], {}
                outcomes.clear()

    def _settle(self, outcomes: Sequence[Any]) -> list[FireResult]:
        by_uid = dict(zip((job[0] for job in self.jobs), outcomes, strict=True))
        bug: BaseException | None = None
        for uid, (manager, plan) in self.plans.items():
            outcome = by_uid.get(uid)
            if uid not in by_uid:
                answers = plan.outcomes()  # every event refused at the edge
            elif isinstance(outcome, TriggersError):
                answers = plan.failed(outcome)
            elif isinstance(outcome, BaseException):
                bug = bug or outcome
                continue
            else:
                try:
                    answers = manager.each_committed(plan, *cast("tuple[Any, Any]", outcome))
                except Exception as exc:  # a hook raised: the other sessions still dispatch
                    bug = bug or exc
                    continue
            _record(self.results, uid, self.sessions[uid], answers)
        if bug is not None:
            raise bug
        return [r for r in self.results if r is not None]

    def settles_in_caller(self, outcomes: Sequence[Any]) -> bool:
        """Settling does no I/O and runs no user code: nothing to dispatch,
        no signal receiver, hook or ``_post_*`` override (asyncio settles
        such a batch on the event loop instead of in a thread)."""
        if any(manager.runs_user_code for manager, _ in self.plans.values()):
            return False
        return not any(not isinstance(outcome, BaseException) and outcome[0].ready for outcome in outcomes)


def _refusing(exc: TriggersError) -> Callable[[str], TriggerManager]:
    def session(uid: str) -> TriggerManager:
        raise exc

    return session


def fire_many(ext: Extension, events: Iterable[Event], sites: Sequence[CallSite] | None = None) -> list[FireResult]:
    """Fire every event; one :class:`FireResult` per event, in order.

    The events of one session are fired in one transaction, in their order
    (:meth:`TriggerManager.fire_each`): one commit per session instead of one
    per event, and the messages of what they scheduled sent together; on
    Redis the transactions of different sessions share round trips (a
    pipeline). With a runner that runs instances in the caller (eager),
    events are fired one by one instead, so that each sees what the
    previous one ran. ``sites``: where each event was fired (``afire``),
    for its warnings."""
    if _runs_in_caller(ext):
        return _one_by_one(ext, events, sites)
    with collection_paused():  # the storage's rounds too (see _Bulk)
        bulk = _Bulk(ext, events, sites)
        return bulk.settle(ext.storage.run_many(bulk.jobs))


def _one_by_one(ext: Extension, events: Iterable[Event], sites: Sequence[CallSite] | None) -> list[FireResult]:
    results, sessions = _grouped(events)
    for uid, items in sessions.items():
        try:
            manager = ext.session(uid)
            outcomes: list[Any] = []
            for number, trigger, kwargs, key in items:
                with warnings_at(sites[number]) if sites else nullcontext():
                    outcomes.append(_one(manager, trigger, kwargs, key))
        except TriggersError as exc:
            outcomes = [exc] * len(items)
        _record(results, uid, items, outcomes)
    return [r for r in results if r is not None]


def _one(manager: Any, trigger: Any, kwargs: Mapping[str, Any] | None, key: Any) -> Any:
    try:
        return manager.fire(trigger, kwargs, key=key)
    except TriggersError as exc:
        return exc


def _runs_in_caller(ext: Extension) -> bool:
    names = {ext.default_runner, *(c.using for c in ext.configs.values() if c.using)}
    try:
        return any(resolve_runner_class(name).runs_in_caller for name in names)
    except TriggersError:
        return True


async def afire(
    ext: Extension, session: str, trigger: str, kwargs: Mapping[str, Any] | None = None, key: str | None = None
) -> list[Instance]:
    """:meth:`Triggers.fire` without blocking the event loop.

    Calls made while a batch is in flight (e.g. from concurrent request
    handlers) are collected and fired together with :func:`fire_many` in one
    worker thread; each call gets its own result or typed error."""
    batcher = _batchers.get(asyncio.get_running_loop())
    if batcher is None:
        batcher = _batchers[asyncio.get_running_loop()] = _Batcher()
    site = call_site()
    with warnings_at(site):  # the batch's task starts in this context
        future = batcher.submit(ext, (session, trigger, kwargs, key), site)
    return await future


class _Batcher:
    """The pending ``afire`` calls of one event loop, flushed one batch at a
    time: while a batch runs in its thread, new calls gather into the next."""

    def __init__(self) -> None:
        self.pending: list[tuple[Extension, Event, asyncio.Future[list[Instance]], CallSite]] = []
        self.running = False

    def submit(self, ext: Extension, event: Event, site: CallSite) -> asyncio.Future[list[Instance]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Instance]] = loop.create_future()
        self.pending.append((ext, event, future, site))
        if not self.running:
            self.running = True
            loop.call_soon(lambda: loop.create_task(self._flush()))  # after the other ready callers submitted
        return future

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                by_app: dict[int, list[tuple[Extension, Event, asyncio.Future[list[Instance]], CallSite]]] = {}
                for item in batch:
                    by_app.setdefault(id(item[0]), []).append(item)
                for items in by_app.values():
                    await self._fire(items)
        finally:
            self.running = False

    @staticmethod
    async def _fire(items: list[tuple[Extension, Event, asyncio.Future[list[Instance]], CallSite]]) -> None:
        try:
            results = await afire_many(items[0][0], [item[1] for item in items], [item[3] for item in items])
        except BaseException as exc:  # handed to every waiting caller
            for _, _, future, _ in items:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise  # cancelled, or the interpreter is exiting
            return
        for (_, _, future, _), result in zip(items, results, strict=True):
            if future.done():  # the caller was cancelled
                continue
            if result.error is not None:
                future.set_exception(result.error)
            else:
                future.set_result(result.scheduled)


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = weakref.WeakKeyDictionary()


async def afire_many(
    ext: Extension, events: Iterable[Event], sites: Sequence[CallSite] | None = None
) -> list[FireResult]:
    """:func:`fire_many` without blocking the event loop: on Redis natively
    (``redis.asyncio``, the sessions' commits pipelined), elsewhere in a
    worker thread. What follows the commits (dispatch, signals, hooks) runs
    in a worker thread when there is any. ``sites``: where each event was
    fired (``afire``'s calls), for the warnings of its planning."""
    with warnings_at(call_site()):  # also in the threads started here, which copy the context
        if _runs_in_caller(ext):
            return await ext.storage.run_sync(fire_many, ext, list(events), sites)
        bulk = _Bulk(ext, events, sites)
        outcomes = await ext.storage.arun_many(bulk.jobs)
        if bulk.settles_in_caller(outcomes):
            return bulk.settle(outcomes)
        return await asyncio.to_thread(bulk.settle, outcomes)


def defer_fire(
    ext: Extension, session: str, trigger: str, kwargs: Mapping[str, Any] | None, key: str | None, using: str | None
) -> None:
    """``ext.fire(...)`` from Django's ``transaction.on_commit`` (see
    ``Triggers.fire_on_commit``): the event is checked now, fired after the
    commit (outside the transaction: it is over)."""
    try:
        from django.db import transaction
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("fire_on_commit needs Django: pip install 'celery-triggers[django]'") from exc
    manager = ext.session(session)
    plan = manager.plan_each([(trigger, kwargs, key)])
    if plan.results[0] is not None:
        raise cast("TriggersError", plan.results[0])
    _, name, checked = plan.checked[0]

    def fire() -> None:
        try:
            manager.fire(name, checked, key=key)
        except Exception:  # after the caller's commit nobody can hear it: logged, the other callbacks still run
            logger.exception(
                "celery-triggers: fire_on_commit of %r in session %r failed after the commit", name, session
            )

    transaction.on_commit(fire, using=using)
