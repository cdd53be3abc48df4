"""Firing many events, and firing from asyncio code.

``fire_many`` fires each event in turn and reports each one's outcome: a
failing event (bad name, bad kwargs, storage refusal) is reported with its
typed error and does not stop the others. ``afire``/``afire_many`` run the
same in a worker thread (``asyncio.to_thread``), so an event loop (Django
async views, FastAPI) is never blocked by storage or broker I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidKwargs, TriggersError
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
    """Fire every event; one :class:`FireResult` per event, in order."""
    results = []
    for number, event in enumerate(events):
        session = trigger = None
        try:
            session, trigger, kwargs = _unpack(number, event)
            results.append(FireResult(session, trigger, list(ext.fire(session, trigger, kwargs))))
        except TriggersError as exc:
            results.append(FireResult(session, trigger, [], exc))
    return results


async def afire(ext: Triggers, session: str, trigger: str, kwargs: Mapping[str, Any] | None = None) -> list[Instance]:
    """:meth:`Triggers.fire` without blocking the event loop."""
    return list(await asyncio.to_thread(ext.fire, session, trigger, kwargs))


async def afire_many(ext: Triggers, events: Iterable[Event]) -> list[FireResult]:
    """:func:`fire_many` without blocking the event loop."""
    return await asyncio.to_thread(fire_many, ext, list(events))
