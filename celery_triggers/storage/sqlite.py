"""SQLite storage: the embedded default. One file, safe across processes.

Each operation runs in a ``BEGIN IMMEDIATE`` transaction (one writer at a
time per file, readers never blocked thanks to WAL), so concurrent fires from
several processes serialize instead of losing updates. A process killed
mid-transaction leaves nothing behind: SQLite rolls the transaction back.

Records are rows (one per trigger, task and instance), and an index table
lists each unstarted instance under every trigger it still awaits, so a fire
reads and writes only the rows it can change, whatever the size of the
session and however many instances wait for other triggers.
"""

from __future__ import annotations

import functools
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import unquote

from ..core.data import dumps
from ..core.engine import Needs
from ..core.errors import CorruptSession, InvalidStorageURL
from ..core.state import Instance, Status
from .base import StorageBackend
from .records import FORMAT, check_format, decode_instance, encode_instance
from .sqlite_deadlines import SQLiteDeadlines
from .summaries import SessionSummary, Tallies, counted
from .txn import Prefetch, Raw, SessionTxn, check_uid
from .urls import mask_url

__all__ = ["SQLiteStorage", "path_from_url"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ct_sessions (
    session TEXT PRIMARY KEY, configs TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, format INTEGER
);
CREATE TABLE IF NOT EXISTS ct_triggers (
    session TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (session, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ct_tasks (
    session TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (session, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ct_instances (
    session TEXT NOT NULL, name TEXT NOT NULL, task TEXT NOT NULL, status TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (session, name)
);
CREATE TABLE IF NOT EXISTS ct_waiting (
    session TEXT NOT NULL, task TEXT NOT NULL, trigger TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (session, task, trigger, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ct_keys (
    session TEXT NOT NULL, key TEXT NOT NULL, names TEXT NOT NULL, PRIMARY KEY (session, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ct_waiting_by_instance ON ct_waiting (session, name);
"""


_TABLES = ("ct_sessions", "ct_triggers", "ct_tasks", "ct_instances", "ct_waiting", "ct_keys")


def path_from_url(url: str) -> str:
    """``sqlite:///rel/path.db`` -> ``rel/path.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise InvalidStorageURL(
            "SQLite storage URL must look like 'sqlite:///relative.db' or 'sqlite:////abs/path.db', "
            f"got {mask_url(url)!r} (for in-process storage use 'memory://')"
        )
    return unquote(url[len(prefix) :])


def _marks(values: frozenset[str] | set[str]) -> str:
    return ",".join("?" * len(values))


class _SQLiteTxn(SessionTxn):
    def __init__(self, uid: str, conn: sqlite3.Connection):
        super().__init__(uid)
        self.conn = conn

    def _rows(self, table: str, names: frozenset[str]) -> dict[str, str]:
        if not names:
            return {}
        cur = self.conn.execute(
            f"SELECT name, data FROM {table} WHERE session = ? AND name IN ({_marks(names)})",  # noqa: S608 - table names and "?" marks only
            (self.uid, *names),
        )
        return dict(cur.fetchall())

    def load_raw(self, needs: Needs) -> tuple[Mapping[str, Raw], Mapping[str, Raw], Mapping[str, Raw]]:
        instances = self._rows("ct_instances", needs.instances)
        for task, trigger in needs.waiting:
            cur = self.conn.execute(
                "SELECT i.name, i.data FROM ct_waiting AS w JOIN ct_instances AS i "
                "ON i.session = w.session AND i.name = w.name "
                "WHERE w.session = ? AND w.task = ? AND w.trigger = ?",
                (self.uid, task, trigger),
            )
            instances.update(cur.fetchall())
        if needs.all_triggers:
            cur = self.conn.execute("SELECT name, data FROM ct_triggers WHERE session = ?", (self.uid,))
            triggers: dict[str, str] = dict(cur.fetchall())
        else:
            triggers = self._rows("ct_triggers", needs.triggers)
        return triggers, self._rows("ct_tasks", needs.tasks), instances

    def write_raw(
        self, triggers: dict[str, dict[str, Any]], tasks: dict[str, dict[str, Any]], instances: dict[str, Instance]
    ) -> None:
        uid = self.uid
        c = self.conn
        c.executemany(
            "INSERT OR REPLACE INTO ct_triggers VALUES (?, ?, ?)", [(uid, k, dumps(v)) for k, v in triggers.items()]
        )
        c.executemany(
            "INSERT OR REPLACE INTO ct_tasks VALUES (?, ?, ?)", [(uid, k, dumps(v)) for k, v in tasks.items()]
        )
        c.executemany(
            "INSERT OR REPLACE INTO ct_instances VALUES (?, ?, ?, ?, ?)",
            [(uid, k, i.task, i.status.value, encode_instance(i)) for k, i in instances.items()],
        )
        c.executemany("DELETE FROM ct_waiting WHERE session = ? AND name = ?", [(uid, k) for k in instances])
        c.executemany(
            "INSERT INTO ct_waiting VALUES (?, ?, ?, ?)",
            [
                (uid, i.task, trigger, k)
                for k, i in instances.items()
                if i.status is Status.UNSTARTED
                for trigger in i.awaiting
            ],
        )
        self._touch()

    def read_key_raw(self, key: str) -> str | None:
        row = self.conn.execute("SELECT names FROM ct_keys WHERE session = ? AND key = ?", (self.uid, key)).fetchone()
        return row[0] if row else None

    def write_key_raw(self, key: str, text: str) -> None:
        self.conn.execute("INSERT INTO ct_keys VALUES (?, ?, ?)", (self.uid, key, text))

    def read_configs_raw(self) -> str | None:
        row = self.conn.execute("SELECT configs, format FROM ct_sessions WHERE session = ?", (self.uid,)).fetchone()
        if row is None:
            return None
        check_format(self.uid, row[1])
        configs: str | None = row[0]
        return configs

    def write_configs_raw(self, text: str) -> None:
        self._touch()
        self.conn.execute("UPDATE ct_sessions SET configs = ? WHERE session = ?", (text, self.uid))

    def _touch(self) -> None:
        now = time.time()
        self.conn.execute(
            "INSERT INTO ct_sessions (session, configs, created_at, updated_at, format) VALUES (?, NULL, ?, ?, ?) "
            "ON CONFLICT (session) DO UPDATE SET updated_at = excluded.updated_at, format = excluded.format",
            (self.uid, now, now, FORMAT),
        )


class SQLiteStorage(SQLiteDeadlines, StorageBackend):
    """``sqlite:///path``: one connection per thread and process."""

    #: The file cannot be opened or read (a gone mount, a full or failing disk).
    connection_errors = (OSError,)
    #: sqlite3 says "unreachable" with ``OperationalError``, as it says "no
    #: such table": these texts are the unreachable ones (a lock held past
    #: the busy timeout is a timeout too).
    _UNREACHABLE = ("unable to open", "disk i/o error", "database is locked", "database is busy")

    def is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, sqlite3.OperationalError):
            return any(text in str(exc).lower() for text in self._UNREACHABLE)
        return super().is_connection_error(exc)

    def __init__(self, url: str, *, timeout: float = 30.0, **_: object):
        super().__init__(url)
        self.path = path_from_url(url)
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise InvalidStorageURL(
                f"SQLite storage {mask_url(url)!r}: directory {directory!r} does not exist (create it, or fix the path)"
            )
        self.timeout = timeout
        self._local = threading.local()
        self._schema_ready = False

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            self._prepare(conn)
        except (sqlite3.Error, OSError) as exc:
            raise self.storage_error(exc, f"cannot open SQLite storage {self.path!r}: {exc}") from exc
        self._local.conn = conn
        self._local.pid = os.getpid()
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL and create the schema, racing other processes safely.

        Changing the journal mode can return SQLITE_BUSY at once (SQLite's
        deadlock avoidance skips the busy handler), so retry until timeout.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                conn.execute("PRAGMA synchronous=NORMAL")
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                if not self._schema_ready:
                    conn.execute("BEGIN IMMEDIATE")
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        conn.execute(statement)
                    columns = {row[1] for row in conn.execute("PRAGMA table_info(ct_sessions)")}
                    if "format" not in columns:  # a file an earlier release made
                        conn.execute("ALTER TABLE ct_sessions ADD COLUMN format INTEGER")
                    conn.execute("COMMIT")
                    self._schema_ready = True
                return
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))  # noqa: S311 - jitter, not crypto

    def read_transaction(self, uid: str, prefetch: Prefetch = ()) -> AbstractContextManager[SessionTxn]:
        """A deferred transaction: one consistent snapshot (WAL), no write lock."""
        return self.transaction(uid, prefetch, begin="BEGIN")

    @contextmanager
    def transaction(
        self, uid: str, prefetch: Prefetch = (), cached: object = None, *, begin: str = "BEGIN IMMEDIATE"
    ) -> Iterator[SessionTxn]:
        conn = self._connect()
        try:
            conn.execute(begin)
        except sqlite3.Error as exc:
            raise self.storage_error(exc, f"session {uid!r}: cannot lock SQLite storage {self.path!r}: {exc}") from exc
        try:
            yield _SQLiteTxn(uid, conn)
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise self.storage_error(exc, f"session {uid!r}: SQLite storage {self.path!r} failed: {exc}") from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise self.storage_error(exc, f"session {uid!r}: commit to {self.path!r} failed: {exc}") from exc

    def instances(self, uid: str) -> dict[str, Instance]:
        check_uid(uid)
        for row in self._read("SELECT format FROM ct_sessions WHERE session = ?", (uid,)):
            check_format(uid, row[0])
        rows = self._read("SELECT name, data FROM ct_instances WHERE session = ?", (uid,))
        return {name: decode_instance(uid, name, data) for name, data in rows}

    def sessions(self) -> list[str]:
        return [row[0] for row in self._read("SELECT session FROM ct_sessions ORDER BY session", ())]

    def iter_sessions(self, batch: int = 500) -> Iterator[list[str]]:
        """In UID order, a page at a time (keyset pagination on the key)."""
        after = None
        while True:
            where, params = ("", ()) if after is None else ("WHERE session > ? ", (after,))
            rows = self._read(f"SELECT session FROM ct_sessions {where}ORDER BY session LIMIT {int(batch)}", params)  # noqa: S608 - a number and "?" marks only
            if not rows:
                return
            yield [row[0] for row in rows]
            after = rows[-1][0]

    def session_exists(self, uid: str) -> bool:
        return bool(self._read("SELECT 1 FROM ct_sessions WHERE session = ?", (check_uid(uid),)))

    def iter_instances(self, uid: str, batch: int = 1000) -> Iterator[list[Instance]]:
        """Per task, its names (sorted by number here), then their records
        ``batch`` at a time by key."""
        check_uid(uid)
        tasks = self._read("SELECT DISTINCT task FROM ct_instances WHERE session = ?", (uid,))
        for (task,) in sorted(tasks):
            rows = self._read("SELECT name FROM ct_instances WHERE session = ? AND task = ?", (uid, task))
            names = sorted((row[0] for row in rows), key=lambda n: (len(n), n))  # "t#9" before "t#10"
            del rows
            for start in range(0, len(names), batch):
                chunk = names[start : start + batch]
                found = dict(
                    self._read(
                        f"SELECT name, data FROM ct_instances WHERE session = ? AND name IN ({_marks(set(chunk))})",  # noqa: S608 - "?" marks only
                        (uid, *chunk),
                    )
                )
                yield [decode_instance(uid, n, found[n]) for n in chunk if n in found]

    def summaries(self, uids: Sequence[str], *, activity: bool = True) -> dict[str, SessionSummary | CorruptSession]:
        """Counts by a ``GROUP BY`` on the status column; the last activity
        (``activity``) from the records, read a batch at a time."""
        if activity:
            return self._tallied(uids)
        out: dict[str, SessionSummary | CorruptSession] = {}
        for uid in uids:
            rows = self._read(
                "SELECT status, COUNT(*) FROM ct_instances WHERE session = ? GROUP BY status", (check_uid(uid),)
            )
            out[uid] = counted(uid, rows)
        return out

    def delete_session(self, uid: str) -> None:
        check_uid(uid)
        with self.transaction(uid) as txn:
            assert isinstance(txn, _SQLiteTxn)
            for table in _TABLES:
                txn.conn.execute(f"DELETE FROM {table} WHERE session = ?", (uid,))  # noqa: S608 - table names and "?" marks only

    def delete_if_idle(self, uid: str, cutoff: float, *, dry_run: bool = False) -> bool:
        with self.transaction(uid) as txn:
            assert isinstance(txn, _SQLiteTxn)
            row = txn.conn.execute("SELECT updated_at FROM ct_sessions WHERE session = ?", (uid,)).fetchone()
            busy = txn.conn.execute(
                "SELECT 1 FROM ct_instances WHERE session = ? AND status IN ('scheduled', 'running') LIMIT 1", (uid,)
            ).fetchone()
            if row is None or busy or row[0] >= cutoff:
                return False
            for table in () if dry_run else _TABLES:
                txn.conn.execute(f"DELETE FROM {table} WHERE session = ?", (uid,))  # noqa: S608 - table names and "?" marks only
        return True

    def _tallied(self, uids: Sequence[str], page: int = 500) -> dict[str, SessionSummary | CorruptSession]:
        """One query per ``page`` sessions, its rows fetched a thousand at a time."""
        out: dict[str, SessionSummary | CorruptSession] = {}
        for start in range(0, len(uids), page):
            chunk = [check_uid(u) for u in uids[start : start + page]]
            tallies = Tallies()
            sql = f"SELECT session, name, data FROM ct_instances WHERE session IN ({_marks(set(chunk))})"  # noqa: S608 - "?" marks only
            try:
                cursor = self._connect().execute(sql, tuple(set(chunk)))
                while rows := cursor.fetchmany(1000):
                    for uid, name, data in rows:
                        tallies.add(uid, functools.partial(decode_instance, uid, name, data))
            except sqlite3.Error as exc:
                raise self.storage_error(exc, f"cannot read SQLite storage {self.path!r}: {exc}") from exc
            out.update(tallies.result(chunk))
        return out

    def _read(self, sql: str, params: tuple[str, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._connect().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self.storage_error(exc, f"cannot read SQLite storage {self.path!r}: {exc}") from exc

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local = threading.local()
