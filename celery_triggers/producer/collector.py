"""Python's cyclic garbage collector paused while a bulk fire computes.

A bulk fire keeps many containers alive until it ends (each session's plan,
its transaction, what this process knows of the session), and allocates
many more on the way. Each of CPython's collections of the older
generations walks every such object again: with 10,000 sessions in one
``fire_many``, more than half of its time went there. Reference counting
still frees everything the batch drops while the collector is paused; only
reference cycles wait.

The collector is the whole process's, so the pause is kept within bounds:

* counted across threads: off until the last paused section ends, then
  on again only if it was on when the first began (an application that
  turned it off keeps it off);
* not extended for ever by overlapping batches: a section that begins when
  the current pause is older than :data:`SHARED_FOR` seconds does not join
  it (it runs as the collector is), so the pause ends with the sections
  already in it;
* reset in a forked child (a fork while another thread is inside a section
  would otherwise leave the child without a collector for good).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SHARED_FOR", "collection_paused"]

#: Seconds during which a pause in progress is shared with sections that begin.
SHARED_FOR = 1.0

_lock = threading.Lock()
_holders = 0
_resume = False
_since = 0.0
_fork_safe = False
#: Bumped in a forked child: a section the child inherited from the parent
#: does not count down a pause it is no part of.
_generation = 0


@contextmanager
def collection_paused() -> Iterator[None]:
    """The cyclic collector off for the ``with`` block (see the module)."""
    global _holders, _resume, _since, _fork_safe
    if not _fork_safe:  # on first use, not at import (no import-time side effects)
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_safe = True
    with _lock:
        joined = _holders == 0 or time.monotonic() - _since < SHARED_FOR
        if joined:
            if _holders == 0:
                _resume, _since = gc.isenabled(), time.monotonic()
                gc.disable()
            _holders += 1
        generation = _generation
    if not joined:
        yield
        return
    try:
        yield
    finally:
        with _lock:
            if generation == _generation:
                _holders -= 1
                if _holders == 0 and _resume:
                    gc.enable()


def _after_fork_in_child() -> None:
    global _lock, _holders, _generation
    _lock = threading.Lock()
    _generation += 1
    if _holders and _resume:
        gc.enable()
    _holders = 0
