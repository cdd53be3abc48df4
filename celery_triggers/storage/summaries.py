"""A session summed up without its instances: how many instances it has
in each status, and its last activity (the latest timestamp of any of its
instances), for the ``sessions`` listing.

Two ways to get one: :func:`tally` counts instances as they stream by
(any backend, in time proportional to the session); the key-value backends
(Redis, Django cache) also keep a summary in the session's state, updated
by every commit in the same atomic write (:func:`track`), so that a listing
reads only the states (:func:`kept_summary`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import CorruptSession
from ..core.state import IN_FLIGHT, RESOLVED, Instance, Status

__all__ = [
    "SessionSummary",
    "Tallies",
    "counted",
    "kept_summary",
    "last_stamp_ms",
    "new_kept",
    "stamp_kept",
    "tally",
    "track",
]

#: The state's key of the kept summary.
KEY = "summary"


@dataclass
class SessionSummary:
    """Instances by status (only statuses present, sorted by name) and the
    session's last activity (Unix time, or None: no timestamp yet)."""

    counts: dict[str, int] = field(default_factory=dict)
    last_activity: float | None = None

    @property
    def instances(self) -> int:
        return sum(self.counts.values())

    @property
    def unresolved(self) -> int:
        return sum(n for status, n in self.counts.items() if Status(status) not in RESOLVED)


def counted(uid: str, rows: Iterable[tuple[Any, int]]) -> SessionSummary | CorruptSession:
    """A summary without last activity from (status, count) rows (a SQL
    ``GROUP BY``); a status that is none is a :class:`CorruptSession`."""
    counts = {}
    for status, n in rows:
        try:
            counts[Status(status).value] = int(n)
        except ValueError:
            return CorruptSession(f"session {uid!r}: {n} stored instance(s) with status {status!r}, which is none")
    return SessionSummary(dict(sorted(counts.items())))


def last_stamp_ms(instance: Instance) -> int:
    """The latest timestamp of the instance (its metadata's ``*_at``
    numbers) in integer milliseconds, as stored (0: none)."""
    stamps = [
        v
        for k, v in instance.metadata.items()
        if k.endswith("_at") and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    return round(max(stamps) * 1000) if stamps else 0


def tally(batches: Iterable[Iterable[Instance]]) -> SessionSummary:
    """The summary of a session from its instances (read in batches: only
    one batch is held at a time)."""
    counts: dict[str, int] = {}
    last = 0
    for batch in batches:
        for instance in batch:
            counts[instance.status.value] = counts.get(instance.status.value, 0) + 1
            last = max(last, last_stamp_ms(instance))
    return SessionSummary(dict(sorted(counts.items())), last / 1000 if last else None)


class Tallies:
    """:func:`tally` of many sessions whose records come mixed (one SQL
    query over a page of sessions); a record that does not decode makes its
    session a :class:`CorruptSession`, the others are summed up."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = {}
        self._last: dict[str, int] = {}
        self._corrupt: dict[str, CorruptSession] = {}

    def add(self, uid: str, decode: Callable[[], Instance]) -> None:
        if uid in self._corrupt:
            return
        try:
            instance = decode()
        except CorruptSession as exc:
            self._corrupt[uid] = exc
            return
        counts = self._counts.setdefault(uid, {})
        counts[instance.status.value] = counts.get(instance.status.value, 0) + 1
        self._last[uid] = max(self._last.get(uid, 0), last_stamp_ms(instance))

    def result(self, uids: Iterable[str]) -> dict[str, SessionSummary | CorruptSession]:
        out: dict[str, SessionSummary | CorruptSession] = {}
        for uid in uids:
            last = self._last.get(uid, 0)
            found = self._corrupt.get(uid) or SessionSummary(
                dict(sorted(self._counts.get(uid, {}).items())), last / 1000 if last else None
            )
            out[uid] = found
        return out


# -- the summary a key-value state keeps ----------------------------------------
# {"counts": {status: n}, "last": ms, "at": the state's updated_at when written}.
# Scheduled and running instances are not counted there: the worker's start on
# Redis turns one into the other without writing the state; the state's
# ``in_flight`` counts them together, and a listing reads the records of a
# session with work in flight to tell them apart.


def new_kept() -> dict[str, Any]:
    """The kept summary of a new session."""
    return {"counts": {}, "last": 0, "at": None}


def track(kept: dict[str, Any], old: Status | None, new: Instance) -> None:
    """Count the write of ``new`` (``old``: its status as stored, None for
    a new instance) in the kept summary."""
    counts: dict[str, int] = kept["counts"]
    if old is not None and old not in IN_FLIGHT:
        left = counts.get(old.value, 0) - 1
        if left > 0:
            counts[old.value] = left
        else:
            counts.pop(old.value, None)
    if new.status not in IN_FLIGHT:
        counts[new.status.value] = counts.get(new.status.value, 0) + 1
    kept["last"] = max(int(kept.get("last") or 0), last_stamp_ms(new))


def stamp_kept(state: dict[str, Any]) -> None:
    """Mark the kept summary as written with this state (call after setting
    ``updated_at``): a state written by code that does not keep the summary
    (an older release) changes ``updated_at`` only, which
    :func:`kept_summary` notices."""
    kept = state.get(KEY)
    if isinstance(kept, dict):
        kept["at"] = state.get("updated_at")


def kept_summary(state: Mapping[str, Any]) -> SessionSummary | None:
    """The summary a state keeps, or None when it cannot tell it alone: none
    kept (a session created before summaries were kept), written by code
    that did not keep it, or instances in flight (scheduled and running are
    told apart by their records)."""
    kept = state.get(KEY)
    if not isinstance(kept, dict) or kept.get("at") != state.get("updated_at") or state.get("in_flight"):
        return None
    counts = kept.get("counts")
    if not isinstance(counts, dict) or not all(isinstance(n, int) and n > 0 for n in counts.values()):
        return None
    try:
        known = {Status(s).value: n for s, n in counts.items()}
    except ValueError:
        return None
    last = kept.get("last")
    return SessionSummary(dict(sorted(known.items())), last / 1000 if isinstance(last, int) and last else None)
