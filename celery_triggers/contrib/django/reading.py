"""How ``django-db://`` reads at scale (see :mod:`.storage`): a session's
instances per task by number through a cursor, and summaries by a
``GROUP BY`` or tallied from the rows of a page of sessions. Each query
runs through ``guarded`` (the storage's error wrapping)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from django.db.models import Count

from ...core.errors import CorruptSession
from ...core.state import Instance
from ...storage.records import decode_instance
from ...storage.summaries import SessionSummary, Tallies, counted
from ...storage.txn import check_uid
from .models import Session, TaskInstance

__all__ = ["COLUMNS", "DBReading", "counts", "iter_instances", "tallied"]

#: The columns of an instance row; ``decode_instance`` reads them (less the name).
COLUMNS = ("name", "task", "number", "status", "kwargs", "result", "metadata", "awaiting", "unless_fired")
Guarded = Callable[[str | None, Callable[[], Any]], Any]
Found = dict[str, SessionSummary | CorruptSession]


def _decoded(uid: str, row: Any) -> Instance:
    record = dict(zip(COLUMNS, row, strict=True))
    return decode_instance(uid, record.pop("name"), record)


def iter_instances(alias: str, guarded: Guarded, uid: str, batch: int) -> Iterator[list[Instance]]:
    rows = TaskInstance.objects.using(alias).filter(session__uid=uid)
    tasks = guarded(uid, lambda: sorted(set(rows.values_list("task", flat=True).distinct())))
    for task in tasks:
        found = rows.filter(task=task).order_by("number").values_list(*COLUMNS).iterator(chunk_size=batch)
        out: list[Instance] = []
        for row in guarded(uid, functools.partial(iter, found)):
            out.append(_decoded(uid, row))
            if len(out) >= batch:
                yield out
                out = []
        if out:
            yield out


def counts(alias: str, guarded: Guarded, uids: list[str]) -> Found:
    out: Found = {}
    for uid in uids:
        rows = TaskInstance.objects.using(alias).filter(session__uid=uid)
        by_status = rows.values_list("status").annotate(n=Count("pk")).order_by()
        out[uid] = counted(uid, guarded(uid, functools.partial(list, by_status)))
    return out


def tallied(alias: str, guarded: Guarded, uids: list[str], page: int = 500) -> Found:
    out: Found = {}
    for start in range(0, len(uids), page):
        chunk = uids[start : start + page]
        tallies = Tallies()
        rows = TaskInstance.objects.using(alias).filter(session__uid__in=chunk)
        found = rows.values_list("session__uid", *COLUMNS).iterator(chunk_size=1000)

        def add(found: Any = found, tallies: Tallies = tallies) -> None:
            for uid, *row in found:
                tallies.add(uid, functools.partial(_decoded, uid, row))

        guarded(None, add)
        out.update(tallies.result(chunk))
    return out


class DBReading:
    """The reads at scale of :class:`~.storage.DjangoDBStorage` (mixed in:
    its database alias and error wrapping)."""

    if TYPE_CHECKING:  # the storage's own
        alias: str

        def _guarded(self, uid: str | None, query: Any) -> Any: ...

    def sessions(self) -> list[str]:
        return self._guarded(
            None, lambda: list(Session.objects.using(self.alias).order_by("uid").values_list("uid", flat=True))
        )

    def iter_sessions(self, batch: int = 500) -> Iterator[list[str]]:
        """In UID order, a page at a time (keyset pagination on the unique UID)."""
        after: str | None = None
        while True:
            rows = Session.objects.using(self.alias).order_by("uid")
            if after is not None:
                rows = rows.filter(uid__gt=after)
            page: list[str] = self._guarded(None, lambda q=rows: list(q.values_list("uid", flat=True)[:batch]))
            if not page:
                return
            yield page
            after = page[-1]

    def session_exists(self, uid: str) -> bool:
        check_uid(uid)
        return bool(self._guarded(uid, Session.objects.using(self.alias).filter(uid=uid).exists))

    def iter_instances(self, uid: str, batch: int = 1000) -> Iterator[list[Instance]]:
        """Per task (sorted here), its rows by number through a cursor
        (server-side on PostgreSQL), ``batch`` at a time."""
        return iter_instances(self.alias, self._guarded, check_uid(uid), batch)

    def summaries(self, uids: Sequence[str], *, activity: bool = True) -> dict[str, SessionSummary | CorruptSession]:
        """Counts by a ``GROUP BY`` on the status column; with ``activity``,
        tallied from the records (one query per 500 sessions, through a
        cursor)."""
        return (tallied if activity else counts)(self.alias, self._guarded, [check_uid(u) for u in uids])
