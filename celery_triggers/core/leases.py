"""Leases: when a running instance is presumed lost, and when a scheduled
one is re-sent. Pure rules over plain data (the worker's main process
writes the heartbeats, the sweeper applies these rules).

A worker holds a lease on every instance it runs: the instance records the
worker (``hostname``) and the heartbeat interval it renews at (``lease``),
and the worker's main process writes one heartbeat record per interval
listing the instances it is running. An instance is presumed lost only
when its worker's heartbeat is :data:`EXPIRY_INTERVALS` intervals old, or
no longer lists it; an instance started by a worker without leases (an
earlier version) is judged by its age, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .state import Instance, Status

__all__ = [
    "EXPIRY_INTERVALS",
    "HEARTBEATS",
    "Heartbeat",
    "LeaseState",
    "dispatch_refused",
    "lease_state",
    "resend_due",
    "since_dispatch",
]

#: A lease is presumed lost this many heartbeat intervals after its last renewal.
EXPIRY_INTERVALS = 3
#: The internal session holding the workers' heartbeat records.
HEARTBEATS = "celery-triggers:workers"


@dataclass(frozen=True)
class Heartbeat:
    """One worker's last heartbeat: when, at which interval, and the
    instances (session, instance, token) it was running."""

    worker: str
    at: float
    interval: float
    running: frozenset[tuple[str, str, str]] = field(default_factory=frozenset)

    def to_kwargs(self) -> dict[str, Any]:
        return {"at": self.at, "interval": self.interval, "running": sorted(list(r) for r in self.running)}

    @classmethod
    def from_kwargs(cls, worker: str, kwargs: Mapping[str, Any]) -> Heartbeat:
        running = frozenset(tuple(str(part) for part in row) for row in kwargs.get("running") or () if len(row) == 3)
        return cls(worker, float(kwargs.get("at") or 0), float(kwargs.get("interval") or 0), running)  # type: ignore[arg-type]  # rows of three


#: "live" (held by a worker that renews it), "expired" (its worker is gone
#: or no longer runs it), "legacy" (started by a worker without leases).
LeaseState = str


def lease_state(uid: str, instance: Instance, heartbeats: Mapping[str, Heartbeat], now: float) -> LeaseState:
    """The state of a running instance's lease."""
    meta = instance.metadata
    interval = meta.get("lease")
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
        return "legacy"
    grace = EXPIRY_INTERVALS * float(interval)
    started = meta.get("started_at")
    if isinstance(started, (int, float)) and now - float(started) <= grace:
        return "live"  # not in a heartbeat yet, perhaps
    beat = heartbeats.get(str(meta.get("hostname") or ""))
    if beat is None or now - beat.at > EXPIRY_INTERVALS * max(beat.interval, float(interval)):
        return "expired"
    token = str(meta.get("task_id") or "")
    return "live" if (uid, instance.name, token) in beat.running else "expired"


def since_dispatch(instance: Instance) -> float | None:
    """When the instance's newest message was sent (best known)."""
    meta = instance.metadata
    for key in ("redispatched_at", "scheduled_at", "created_at"):
        value = meta.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def dispatch_refused(instance: Instance) -> bool:
    """Whether the broker refused the instance's newest message (a
    ``DispatchError``): nothing was queued, so a re-send is due at once."""
    refused = instance.metadata.get("dispatch_refused_at")
    if not isinstance(refused, (int, float)) or isinstance(refused, bool):
        return False
    sent = since_dispatch(instance)
    return sent is None or refused >= sent


def resend_due(instance: Instance, now: float, older_than: float) -> bool:
    """Whether a scheduled instance's messages may be lost: its newest was
    sent more than ``older_than`` seconds ago, doubled for each re-send
    already made (a queue backlog is not flooded with copies: every copy
    stays valid, whichever starts first runs)."""
    if instance.status is not Status.SCHEDULED:
        return False
    sent = since_dispatch(instance)
    if sent is None or dispatch_refused(instance):
        return True
    resends = max(int(instance.metadata.get("dispatches", 1)) - 1, 0)
    return bool(now - sent >= older_than * 2 ** min(resends, 10))
