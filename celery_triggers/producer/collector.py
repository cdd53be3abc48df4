"""Python's cyclic garbage collector paused while a bulk fire computes.

A bulk fire keeps many containers alive until it ends (each session's plan,
its transaction, what this process knows of the session), and allocates
many more on the way. Each of CPython's collections of the older
generations walks every such object again: with 10,000 sessions in one
``fire_many``, more than half of its time went there. Reference counting
still frees everything the batch drops while the collector is paused; only
reference cycles wait, until the outermost paused section ends (and only
if the collector was running when it began: an application that turned it
off keeps it off). Threads share the collector, so the pause is counted.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collection_paused"]

_lock = threading.Lock()
_holders = 0
_resume = False


@contextmanager
def collection_paused() -> Iterator[None]:
    """The cyclic collector off for the ``with`` block (nested and
    concurrent blocks: off until the last one ends)."""
    global _holders, _resume
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _resume:
                gc.enable()
