"""Firing many events, and firing from asyncio code.

``fire_many`` fires the events of each session in one transaction, in
order, and reports each event's outcome: a failing event (bad name, bad
kwargs, storage refusal) is reported with its typed error and does not stop
the others. ``afire``/``afire_many`` run the
same in a worker thread (``asyncio.to_thread``), so an event loop (Django
async views, FastAPI) is never blocked by storage or broker I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidKwargs, InvalidName, TriggersError
from ..runners import resolve_runner_class
from ..state import Instance

if TYPE_CHECKING:
    from .extension import Triggers

__all__ = ["FireResult", "afire", "afire_many", "fire_many"]

#: One event: (session UID, trigger name) or (session UID, trigger name, kwargs).
Event = Sequence[Any]


@dataclass(frozen=True)
class FireResult:
    """The outcome of one event of :func:`fire_many`."""

    session: Any
    trigger: Any
    scheduled: list[Instance] = field(default_factory=list)
    error: TriggersError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _unpack(number: int, event: Any) -> tuple[Any, Any, Mapping[str, Any] | None]:
    if isinstance(event, (str, bytes)) or not isinstance(event, Sequence) or len(event) not in (2, 3):
        raise InvalidKwargs(f"event #{number} must be (session, trigger) or (session, trigger, kwargs), got {event!r}")
    return event[0], event[1], event[2] if len(event) == 3 else None


def fire_many(ext: Triggers, events: Iterable[Event]) -> list[FireResult]:
    """Fire every event; one :class:`FireResult` per event, in order.

    The events of one session are fired in one transaction, in their order
    (:meth:`TriggerManager.fire_each`): one commit per session instead of one
    per event, and the messages of what they scheduled sent together. With a
    runner that runs instances in the caller (eager), events are fired one by
    one instead, so that each sees what the previous one ran."""
    results: list[FireResult | None] = []
    sessions: dict[str, list[tuple[int, str, Mapping[str, Any] | None]]] = {}
    for number, event in enumerate(events):
        results.append(None)
        try:
            session, trigger, kwargs = _unpack(number, event)
        except TriggersError as exc:
            results[number] = FireResult(None, None, [], exc)
            continue
        if not isinstance(session, str):
            results[number] = FireResult(
                session, trigger, [], InvalidName(f"event #{number}: {session!r} is not a UID")
            )
            continue
        sessions.setdefault(session, []).append((number, trigger, kwargs))
    one_by_one = _runs_in_caller(ext)
    for uid, items in sessions.items():
        try:
            manager = ext.session(uid)
            if one_by_one:
                outcomes: list[Any] = [_one(manager, trigger, kwargs) for _, trigger, kwargs in items]
            else:
                outcomes = list(manager.fire_each([(trigger, kwargs) for _, trigger, kwargs in items]))
        except TriggersError as exc:  # the session's storage refused: its events only
            outcomes = [exc] * len(items)
        for (number, trigger, _), outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, TriggersError):
                results[number] = FireResult(uid, trigger, [], outcome)
            else:
                results[number] = FireResult(uid, trigger, list(outcome))
    return [r for r in results if r is not None]


def _one(manager: Any, trigger: Any, kwargs: Mapping[str, Any] | None) -> Any:
    try:
        return manager.fire(trigger, kwargs)
    except TriggersError as exc:
        return exc


def _runs_in_caller(ext: Triggers) -> bool:
    names = {ext.default_runner, *(c.using for c in ext.configs.values() if c.using)}
    try:
        return any(resolve_runner_class(name).runs_in_caller for name in names)
    except TriggersError:
        return True


async def afire(ext: Triggers, session: str, trigger: str, kwargs: Mapping[str, Any] | None = None) -> list[Instance]:
    """:meth:`Triggers.fire` without blocking the event loop."""
    return list(await asyncio.to_thread(ext.fire, session, trigger, kwargs))


async def afire_many(ext: Triggers, events: Iterable[Event]) -> list[FireResult]:
    """:func:`fire_many` without blocking the event loop."""
    return await asyncio.to_thread(fire_many, ext, list(events))
