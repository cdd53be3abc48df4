"""What ``sessions`` lists: the sessions walked in pages, summed up from
what storage keeps (see :meth:`StorageBackend.summaries`), filtered,
sorted, and cut at ``--limit`` as early as the order allows."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from ..core.state import is_internal
from ..storage import StorageBackend
from .views import summary_row

__all__ = ["select_sessions"]

#: Sessions summed up per storage call.
PAGE = 500


def _uids(storage: StorageBackend, seen: list[int]) -> Iterator[str]:
    """Every UID but celery-triggers' own, counted in ``seen[0]``."""
    for chunk in storage.iter_sessions(PAGE):
        for uid in chunk:
            if not is_internal(uid):
                seen[0] += 1
                yield uid


def _rows(storage: StorageBackend, uids: list[str], page: int = PAGE) -> Iterator[dict[str, Any]]:
    for start in range(0, len(uids), page):
        chunk = uids[start : start + page]
        found = storage.summaries(chunk)
        yield from (summary_row(uid, found[uid]) for uid in chunk)


def select_sessions(
    storage: StorageBackend, *, unresolved: bool, statuses: tuple[str, ...], sort: str, limit: int | None
) -> tuple[list[dict[str, Any]], str]:
    """The rows to show, and a note saying what ``limit`` left out ("":
    nothing). By session UID with a limit and no filter, only the first
    ``limit`` sessions are summed up; with a filter, the walk stops at the
    ``limit``-th match; by last activity or size, every session is summed
    up but only ``limit`` rows are kept."""

    def keep(row: dict[str, Any]) -> bool:
        return (not unresolved or bool(row["unresolved"])) and (
            not statuses or bool(set(statuses) & set(row["counts"]))
        )

    seen = [0]
    filtered = unresolved or bool(statuses)
    if sort == "session" and limit and not filtered:
        chosen = heapq.nsmallest(limit, _uids(storage, seen))
        left = seen[0] - len(chosen)
        return list(_rows(storage, chosen)), f"{left} more session(s) not shown (--limit {limit})" if left else ""
    uids = sorted(_uids(storage, seen))
    matched = (row for row in _rows(storage, uids, min(PAGE, 4 * limit) if limit else PAGE) if keep(row))
    if sort == "session":
        rows = []
        examined = 0
        for row in matched:
            rows.append(row)
            if len(rows) == limit:
                examined = uids.index(row["session"]) + 1
                break
        left = len(uids) - examined if examined else 0
        return rows, f"stopped at --limit {limit}: {left} more session(s) not checked" if left else ""
    field = "last_activity" if sort == "last-activity" else "instances"
    count = [0]

    def counted() -> Iterator[dict[str, Any]]:
        for row in matched:
            count[0] += 1
            yield row

    def key(row: dict[str, Any]) -> float:
        return float(row[field] or 0)

    if limit:
        rows = heapq.nlargest(limit, counted(), key=key)
    else:
        rows = sorted(counted(), key=key, reverse=True)
    left = count[0] - len(rows)
    return rows, f"{left} more session(s) not shown (--limit {limit})" if left else ""
