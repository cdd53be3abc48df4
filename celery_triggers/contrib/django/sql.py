"""The statements of a ``django-db://`` operation on PostgreSQL and SQLite,
written out: a fire's reads in one ``SELECT`` (its trigger and task
records and its instances, through the ``Waiting`` index), its writes in
one statement on PostgreSQL (data-modifying ``WITH``) and one per table on
SQLite. The ORM builds the same queries at several times the cost in
Python, and sends one per table; other databases still take the ORM's path
(``storage.py``).

Only quoted table and column names and ``%s`` marks are written into the
SQL; every value is a parameter.
"""
# ruff: noqa: S608 - names and marks only (see above)

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...core.data import dumps
from ...core.engine import Needs
from ...core.state import Instance, Status
from .models import TaskInstance, TaskRecord, TriggerRecord, Waiting

__all__ = ["Statements", "statements"]

#: ``RETURNING`` (SQLite 3.35+).
_SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)
_UNSTARTED = Status.UNSTARTED.value
#: The instance columns after ``name``, in the engine's record order.
_FIELDS = ("task", "number", "status", "kwargs", "result", "metadata", "awaiting", "unless_fired")
_JSON_FIELDS = frozenset({"kwargs", "result", "metadata", "awaiting", "unless_fired"})


def _marks(count: int, mark: str = "%s") -> str:
    return ", ".join([mark] * count)


class Statements:
    """The hot path's SQL for one database vendor (``postgresql`` or
    ``sqlite``), its table and column names quoted once."""

    def __init__(self, connection: Any):
        self.postgres = connection.vendor == "postgresql"
        q = connection.ops.quote_name
        self.q = q
        self.json = "%s::jsonb" if self.postgres else "%s"
        self.trigger_table = q(TriggerRecord._meta.db_table)
        self.task_table = q(TaskRecord._meta.db_table)
        self.instance_table = q(TaskInstance._meta.db_table)
        self.waiting_table = q(Waiting._meta.db_table)
        if self.postgres:
            pairs = ", ".join(f"'{f}', {q(f)}" for f in _FIELDS)
            self.record = f"jsonb_build_object({pairs})"
        else:
            pairs = ", ".join(f"'{f}', json({q(f)})" if f in _JSON_FIELDS else f"'{f}', {q(f)}" for f in _FIELDS)
            self.record = f"json_object({pairs})"
        self.conflict = f"ON CONFLICT ({q('session_id')}, {q('name')})"
        #: Parameters one statement may take (SQLite's limit, as the ORM
        #: splits its bulk writes by it); None: no limit (PostgreSQL).
        self.max_params: int | None = None if self.postgres else connection.features.max_query_params
        self.instance_columns = ", ".join(q(c) for c in ("session_id", "name", *_FIELDS))
        self.instance_values = "(%s, %s, %s, %s, %s, " + _marks(5, self.json) + ")"
        self.instance_update = ", ".join(f"{q(f)} = EXCLUDED.{q(f)}" for f in _FIELDS)

    # -- reads --------------------------------------------------------------
    def load(
        self, cursor: Any, sid: int, needs: Needs
    ) -> tuple[dict[str, str], dict[str, str], dict[str, str], set[str]]:
        """The trigger, task and instance records ``needs`` names (JSON
        text), in one query, and the names of the unstarted instances among
        them."""
        q = self.q
        parts: list[str] = []
        params: list[Any] = []
        name, sid_col = q("name"), q("session_id")
        if needs.all_triggers or needs.triggers:
            where = "" if needs.all_triggers else f" AND {name} IN ({_marks(len(needs.triggers))})"
            parts.append(f"SELECT 't', {name}, {q('data')}, NULL FROM {self.trigger_table} WHERE {sid_col} = %s{where}")
            params += [sid] if needs.all_triggers else [sid, *needs.triggers]
        if needs.tasks:
            parts.append(
                f"SELECT 'k', {name}, {q('data')}, NULL FROM {self.task_table} "
                f"WHERE {sid_col} = %s AND {name} IN ({_marks(len(needs.tasks))})"
            )
            params += [sid, *needs.tasks]
        if needs.instances or needs.waiting:
            wanted: list[str] = []
            if needs.instances:
                wanted.append(f"{name} IN ({_marks(len(needs.instances))})")
                params_instances: list[Any] = list(needs.instances)
            else:
                params_instances = []
            if needs.waiting:
                pairs = " OR ".join([f"({q('task')} = %s AND {q('trigger')} = %s)"] * len(needs.waiting))
                wanted.append(
                    f"{q('id')} IN (SELECT {q('instance_id')} FROM {self.waiting_table} "
                    f"WHERE {sid_col} = %s AND ({pairs}))"
                )
            parts.append(
                f"SELECT 'i', {name}, {self.record}, {q('status')} FROM {self.instance_table} "
                f"WHERE {sid_col} = %s AND ({' OR '.join(wanted)})"
            )
            params += [sid, *params_instances]
            if needs.waiting:
                params.append(sid)
                for pair in needs.waiting:
                    params += pair
        found: tuple[dict[str, str], dict[str, str], dict[str, str]] = ({}, {}, {})
        unstarted: set[str] = set()
        if not parts:
            return (*found, unstarted)
        cursor.execute(" UNION ALL ".join(parts), params)
        for kind, key, data, status in cursor.fetchall():
            found["tki".index(kind)][key] = data
            if status == _UNSTARTED:
                unstarted.add(key)
        return (*found, unstarted)

    # -- writes -------------------------------------------------------------
    def write(
        self,
        cursor: Any,
        sid: int,
        triggers: Mapping[str, dict[str, Any]],
        tasks: Mapping[str, dict[str, Any]],
        instances: Mapping[str, Instance],
        indexed: set[str],
    ) -> None:
        """Upsert the records, and keep the ``Waiting`` index: rows for the
        instances that are unstarted now, none left for those that were
        (``indexed``: the unstarted instances the operation read)."""
        q = self.q
        upserts: list[_Insert] = []
        record_columns = f"({q('session_id')}, {q('name')}, {q('data')})"
        for table, records in ((self.trigger_table, triggers), (self.task_table, tasks)):
            if records:
                upserts.append(
                    _Insert(
                        f"INSERT INTO {table} {record_columns} VALUES ",
                        f"(%s, %s, {self.json})",
                        [(sid, key, dumps(record)) for key, record in records.items()],
                        f" {self.conflict} DO UPDATE SET {q('data')} = EXCLUDED.{q('data')}",
                    )
                )
        reindex = [k for k, i in instances.items() if i.status is Status.UNSTARTED or k in indexed]
        unindex = [k for k in reindex if k in indexed]
        rows = [
            (k, instances[k].task, trigger)
            for k in reindex
            if instances[k].status is Status.UNSTARTED
            for trigger in instances[k].awaiting
        ]
        upserted: _Insert | None = None
        if instances:
            upserted = _Insert(
                f"INSERT INTO {self.instance_table} ({self.instance_columns}) VALUES ",
                self.instance_values,
                [(sid, key, *_columns(instance)) for key, instance in instances.items()],
                f" {self.conflict} DO UPDATE SET {self.instance_update}"
                + (f" RETURNING {q('name')}, {q('id')}" if reindex else ""),
            )
            upserts.append(upserted)
        if self.postgres and not (unindex and rows):
            self._write_together(cursor, sid, [u.statement(u.rows) for u in upserts], unindex, rows)
            return
        ids: dict[str, int] = {}
        for upsert in upserts:
            for part in self._parts(upsert.rows):
                cursor.execute(*upsert.statement(part))
                if upsert is upserted and reindex:
                    ids.update(cursor.fetchall())
        for part in self._parts([(ids[k],) for k in unindex]):
            cursor.execute(
                f"DELETE FROM {self.waiting_table} WHERE {q('session_id')} = %s "
                f"AND {q('instance_id')} IN ({_marks(len(part))})",
                [sid, *(row[0] for row in part)],
            )
        index = _Insert(
            f"INSERT INTO {self.waiting_table} ({q('session_id')}, {q('task')}, {q('trigger')}, {q('instance_id')}) "
            "VALUES ",
            "(%s, %s, %s, %s)",
            [(sid, task, trigger, ids[name]) for name, task, trigger in rows],
        )
        for part in self._parts(index.rows):
            cursor.execute(*index.statement(part))

    def _parts(self, rows: list[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
        """``rows`` in as few statements as the parameter limit allows (the
        rows of one statement: one part on PostgreSQL)."""
        if not rows:
            return
        per = len(rows) if self.max_params is None else max(1, self.max_params // (len(rows[0]) + 1))
        for start in range(0, len(rows), per):
            yield rows[start : start + per]

    def _write_together(
        self,
        cursor: Any,
        sid: int,
        statements: list[tuple[str, list[Any]]],
        unindex: list[str],
        rows: list[tuple[str, str, str]],
    ) -> None:
        """PostgreSQL: every write of the operation in one statement, the
        upserts as data-modifying ``WITH`` clauses (the index rows take the
        instances' ids from the upsert's ``RETURNING``). Not when the same
        operation both drops and adds index rows: all clauses see one
        snapshot, so those two run apart (see :meth:`write`)."""
        if not statements:
            return
        q = self.q
        params: list[Any] = []
        clauses: list[str] = []
        for number, (sql, values) in enumerate(statements):
            clauses.append(f"w{number} AS ({sql})")
            params += values
        upserted = f"w{len(statements) - 1}"  # the instances' upsert, when there are index rows to keep
        if unindex:
            clauses.append(
                f"d AS (DELETE FROM {self.waiting_table} WHERE {q('session_id')} = %s AND {q('instance_id')} IN "
                f"(SELECT {q('id')} FROM {upserted} WHERE {q('name')} IN ({_marks(len(unindex))})))"
            )
            params += [sid, *unindex]
        if rows:
            main = (
                f"INSERT INTO {self.waiting_table} ({q('session_id')}, {q('task')}, {q('trigger')}, "
                f"{q('instance_id')}) SELECT %s, v.task, v.trigger, {upserted}.{q('id')} "
                f"FROM (VALUES {', '.join(['(%s, %s, %s)'] * len(rows))}) AS v(name, task, trigger) "
                f"JOIN {upserted} ON {upserted}.{q('name')} = v.name"
            )
            params = [*params, sid, *(value for row in rows for value in row)]
        else:
            main = "SELECT 1"
        cursor.execute(f"WITH {', '.join(clauses)} {main}", params)


@dataclass(frozen=True)
class _Insert:
    """An ``INSERT`` of many rows: ``head``, one ``row`` (its marks) per
    row, ``tail``."""

    head: str
    row: str
    rows: list[tuple[Any, ...]]
    tail: str = ""

    def statement(self, rows: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
        """The SQL for ``rows`` (all of :attr:`rows`, or a part) and its parameters."""
        return (
            self.head + ", ".join([self.row] * len(rows)) + self.tail,
            [value for row in rows for value in row],
        )


def _columns(instance: Instance) -> Iterable[Any]:
    fields = TaskInstance.fields_of(instance)
    for field in _FIELDS:
        value = fields[field]
        if field not in _JSON_FIELDS:
            yield value
        else:  # a missing result is SQL NULL, as the ORM stores it
            yield None if value is None and field == "result" else dumps(value)


_CACHE: dict[tuple[str, str], Statements] = {}


def statements(alias: str, connection: Any) -> Statements | None:
    """The statements for ``connection`` (of database ``alias``), or None
    where the ORM's path runs (neither PostgreSQL nor SQLite 3.35+)."""
    vendor = connection.vendor
    if vendor != "postgresql" and not (vendor == "sqlite" and _SQLITE_RETURNING):
        return None
    found = _CACHE.get((alias, vendor))
    if found is None:
        found = _CACHE[(alias, vendor)] = Statements(connection)
    return found
