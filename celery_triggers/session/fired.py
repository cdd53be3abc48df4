"""What firing returns (:class:`Fired`), and a bulk fire split at its
transaction (:class:`EachPlan`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..core.errors import TriggersError
from ..core.state import Instance
from .commit import Body

if TYPE_CHECKING:
    from .manager import TriggerManager

__all__ = ["EachPlan", "Fired"]


class Fired(list[Instance]):
    """What ``fire`` returns: the instances it scheduled, and a handle on
    the session to wait for. ``duplicate``: the fire's idempotency key was
    used already, so it changed nothing; the list holds what the first fire
    with that key scheduled (as stored now)."""

    def __init__(self, scheduled: list[Instance], session: TriggerManager, *, duplicate: bool = False):
        super().__init__(scheduled)
        self.session = session
        self.duplicate = duplicate

    def wait(self, timeout: float = 30.0, *, until: str = "idle", interval: float = 0.2) -> dict[str, Instance]:
        """:meth:`TriggerManager.wait` on the session fired into."""
        return self.session.wait(timeout, until=until, interval=interval)


class EachPlan:
    """:meth:`TriggerManager.fire_each` split at its transaction (see
    :meth:`TriggerManager.plan_each`)."""

    def __init__(self, count: int):
        self.results: list[Fired | TriggersError | None] = [None] * count
        #: (event number, trigger, normalised kwargs) of the events that passed the edge checks.
        self.checked: list[tuple[int, str, dict[str, Any]]] = []
        #: Per checked event, the instances it scheduled (set by the body).
        self.scheduled: list[list[str]] = []
        #: Per checked event, its idempotency key (None: none).
        self.keys: list[str | None] = []
        #: What the committed run did with keys: the checked events it fired
        #: (indexes), the instances of those a used key answers with, and
        #: those answered as an earlier event of this plan with the same key.
        self.fired: list[int] = []
        self.prior: dict[int, list[Instance]] = {}
        self.same_as: dict[int, int] = {}
        self.body: Body | None = None
        self.prefetch: tuple[Any, ...] = ()
        #: When the events were planned (``time.time()``), for the hooks' ``firing``.
        self.started = time.time()

    def failed(self, exc: TriggersError) -> list[Fired | TriggersError]:
        """The transaction was refused: every checked event fails with ``exc``."""
        for number, _, _ in self.checked:
            self.results[number] = exc
        return self.outcomes()

    def outcomes(self) -> list[Fired | TriggersError]:
        return [r for r in self.results if r is not None]
