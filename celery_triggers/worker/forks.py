"""No fork while a worker's own threads talk to storage.

The lease keeper and the sweeper run in threads of the worker's main
process, and the prefork pool forks that process (at start, and whenever
it replaces a pool process). A fork taken while another thread is in the
middle of a storage call copies that call's locks into the child, held by
a thread the child does not have: SQLite's per-process lock table (every
later write of the child waits on it for ever), Django's connection
handler. So those threads do their storage work under a gate, and a fork
waits at the gate until the current call is done (``os.register_at_fork``;
a fork is delayed by one storage call at most).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["install", "storage_io"]

_gate = threading.Lock()
_installed = False


def install() -> None:
    """Make this process's forks wait at the gate (once per process)."""
    global _installed
    if not _installed:
        os.register_at_fork(before=_gate.acquire, after_in_parent=_gate.release, after_in_child=_gate.release)
        _installed = True


@contextmanager
def storage_io() -> Iterator[None]:
    """Hold the gate for one storage call (or a short run of them)."""
    with _gate:
        yield
