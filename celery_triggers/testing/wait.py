"""``wait_until_idle``: wait for a session on a real worker."""

from __future__ import annotations

import time

from ..manager import TriggerManager
from ..state import Instance, Status

__all__ = ["wait_until_idle"]

_BUSY = (Status.SCHEDULED, Status.RUNNING)


def wait_until_idle(session: TriggerManager, timeout: float = 30.0, interval: float = 0.05) -> dict[str, Instance]:
    """Poll until no instance of ``session`` is scheduled or running; return
    the instances. Fails with a readable summary of every instance (status
    and age) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        instances = session.instances
        if not any(i.status in _BUSY for i in instances.values()):
            return instances
        if time.monotonic() >= deadline:
            now = time.time()
            lines = [f"  {name}: {i.status.value} for {now - _since(i, now):.1f}s" for name, i in instances.items()]
            raise AssertionError(
                f"session {session.uid!r} still busy after {timeout}s (is a worker consuming its queue?):\n"
                + "\n".join(lines)
            )
        time.sleep(interval)


def _since(instance: Instance, now: float) -> float:
    """When the instance entered its current status (best known)."""
    meta = instance.metadata
    for key in (f"{instance.status.value}_at", "started_at", "scheduled_at", "created_at"):
        if meta.get(key):
            return float(meta[key])
    return now
