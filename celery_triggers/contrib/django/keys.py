"""The idempotency keys of ``django-db://`` (the ``FireKey`` rows): read
one, and record one with a single statement that says whether it was new."""

from __future__ import annotations

import sqlite3

from django.db import connections

from ...core.data import dumps, loads
from .models import FireKey

__all__ = ["insert_key", "stored_key"]

#: ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (SQLite 3.35+).
_SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)


def stored_key(alias: str, session_id: int, key: str) -> str | None:
    """What the fire that used ``key`` stored (JSON text), or None."""
    row = FireKey.objects.using(alias).filter(session_id=session_id, key=key).values_list("names").first()
    return None if row is None else dumps(row[0])


def insert_key(alias: str, session_id: int, key: str, text: str) -> bool:
    """Record ``key`` (with ``text``) unless it is used: True if it was
    new. One statement on PostgreSQL and SQLite, two elsewhere."""
    connection = connections[alias]
    vendor = connection.vendor
    if vendor not in ("postgresql", "sqlite") or (vendor == "sqlite" and not _SQLITE_RETURNING):
        if stored_key(alias, session_id, key) is not None:
            return False
        FireKey.objects.using(alias).create(session_id=session_id, key=key, names=loads(text))
        return True
    q = connection.ops.quote_name
    value = "%s::jsonb" if vendor == "postgresql" else "%s"
    table, columns = q(FireKey._meta.db_table), f"{q('session_id')}, {q('key')}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}, {q('names')}) VALUES (%s, %s, {value}) "  # noqa: S608 - quoted names only
            f"ON CONFLICT ({columns}) DO NOTHING RETURNING id",
            [session_id, key, text],
        )
        return cursor.fetchone() is not None
