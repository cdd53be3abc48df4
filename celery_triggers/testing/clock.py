"""Move time for deadlines (``within``) in tests, without sleeping.

::

    with frozen_clock(app) as clock:         # the engine's time stands still
        session.fire("paid")
        clock.advance(3600)                  # an hour later: deadlines swept
        assert_instance_abandoned(session, "t_ship#0")

:meth:`DeadlineClock.advance` moves the clock, then runs the workers'
deadline sweep in this process, and waits for the threading runner's work
(the eager runner has done its own by then).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery

from ..app.extension import Triggers
from ..worker.deadlines import DeadlineOutcome, sweep_deadlines

__all__ = ["DeadlineClock", "frozen_clock"]


class DeadlineClock:
    """The time as the engine of one app sees it: frozen at ``start``,
    moved only by :meth:`advance`."""

    def __init__(self, app: Celery, start: float | None = None):
        self.app = app
        self.now = time.time() if start is None else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float, *, timeout: float = 30.0) -> list[DeadlineOutcome]:
        """Move the clock ``seconds`` ahead and apply every deadline due by
        then (what a worker's sweep would do); returns what it did."""
        if seconds < 0:
            raise ValueError(f"time only moves forward, got {seconds!r}")
        self.now += seconds
        outcomes = sweep_deadlines(Triggers(self.app), self.now)
        self.join(timeout)
        return outcomes

    def sweep(self) -> list[DeadlineOutcome]:
        """Apply the deadlines due now (without moving the clock)."""
        outcomes = sweep_deadlines(Triggers(self.app), self.now)
        self.join()
        return outcomes

    def join(self, timeout: float = 30.0) -> None:
        """Wait for the threading runner's work, cascades included."""
        for runner in Triggers(self.app).active_runners():
            join_all: Any = getattr(runner, "join_all", None)
            if callable(join_all):
                join_all(timeout)


@contextmanager
def frozen_clock(app: Celery, start: float | None = None) -> Iterator[DeadlineClock]:
    """Freeze the time ``app``'s trigger engine sees (at ``start``, default
    now) for the block; ``clock.advance(seconds)`` moves it and sweeps the
    deadlines due."""
    ext = Triggers(app)
    saved = ext.clock
    clock = DeadlineClock(app, start)
    ext.clock = clock
    try:
        yield clock
    finally:
        ext.clock = saved
