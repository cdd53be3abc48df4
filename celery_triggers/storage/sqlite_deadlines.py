"""The deadline index on SQLite: its own table, indexed by due time (see
:mod:`.deadlines`); a sweep reads the due entries through the index."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.errors import StorageError
from .deadlines import DeadlineEntry

__all__ = ["SQLiteDeadlines"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ct_deadlines ("
    " session TEXT NOT NULL, name TEXT NOT NULL, due REAL NOT NULL, PRIMARY KEY (session, name))",
    "CREATE INDEX IF NOT EXISTS ct_deadlines_by_due ON ct_deadlines (due)",
)


class SQLiteDeadlines:
    """Mixed into :class:`~.sqlite.SQLiteStorage` (its ``_connect`` and errors)."""

    path: str
    _deadline_schema: bool = False

    if TYPE_CHECKING:  # the storage's own

        def _connect(self) -> sqlite3.Connection: ...

        def storage_error(self, exc: BaseException, message: str) -> StorageError: ...

    def _deadline_sql(self, sql: str, params: Any = (), *, many: bool = False) -> list[Any]:
        conn = self._connect()
        try:
            if not self._deadline_schema:
                for statement in _SCHEMA:
                    conn.execute(statement)
                self._deadline_schema = True
            if many:
                with conn:  # one transaction for every row
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(sql, params)
                return []
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self.storage_error(exc, f"SQLite storage {self.path!r}: deadline index failed: {exc}") from exc

    def index_deadlines(self, uid: str, due: Mapping[str, float]) -> None:
        rows = [(uid, name, float(when)) for name, when in due.items()]
        self._deadline_sql("INSERT OR REPLACE INTO ct_deadlines (session, name, due) VALUES (?, ?, ?)", rows, many=True)

    def due_deadlines(self, now: float, limit: int = 500) -> list[DeadlineEntry]:
        rows = self._deadline_sql(
            "SELECT session, name, due FROM ct_deadlines WHERE due <= ? ORDER BY due LIMIT ?", (now, limit)
        )
        return [(str(uid), str(name), float(due)) for uid, name, due in rows]

    def drop_deadline(self, uid: str, name: str, due: float) -> None:
        self._deadline_sql("DELETE FROM ct_deadlines WHERE session = ? AND name = ? AND due = ?", (uid, name, due))
