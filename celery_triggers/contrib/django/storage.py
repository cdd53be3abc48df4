"""``django-db://`` (or ``django-db://<alias>``): sessions in the project's
database, through the models of :mod:`.models` (run ``manage.py migrate``).

Each operation is one ``transaction.atomic`` block that locks only its
session: on PostgreSQL (and other databases with ``SELECT ... FOR UPDATE``)
the session's row is locked first; on SQLite the first statement is a write
to the session's row, which takes SQLite's write lock before anything is
read (a transaction that read first could not upgrade under a concurrent
writer). A fire reads only the rows it can change (the trigger and its
watchers' task records, the instances waiting for it, through the
``Waiting`` index) and writes only what changed, so its cost does not grow
with the session.

An operation inside the caller's own ``transaction.atomic`` block on the
storage's database joins it (a savepoint): its rows commit with the
caller's, or vanish with a rollback, and its messages are sent only once
the caller's transaction commits (``transaction.on_commit``), so a worker
never looks for an instance that is not committed yet. A message the broker
refuses then is logged, its instance left ``scheduled`` for the recovery
sweep. ``?outer_atomic=allow`` sends at once instead (for tests in Django's
``TestCase``, which never commits), ``?outer_atomic=refuse`` refuses to run
inside the caller's block.

Connections: the storage uses the thread's Django connection, whose
lifetime Django manages between requests and Celery's Django fix-up between
tasks (both close a connection that is broken or older than
``CONN_MAX_AGE``). After a database error outside the caller's transaction
the storage closes a broken connection, so the next operation (or the
worker's retry) reconnects instead of failing on it again. In a process
forked after the connection was opened (a prefork pool child), the first
operation drops the inherited connection and opens its own, as Celery's
Django fix-up does.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from ...core.data import dumps, loads
from ...core.engine import Needs
from ...core.errors import ConfigurationError, Conflict, InvalidStorageURL, StorageError
from ...core.state import Instance, Status
from ...storage import django_alias, mask_url
from ...storage.base import StorageBackend
from ...storage.records import decode_instance
from ...storage.txn import Prefetch, Raw, SessionTxn, check_uid

R = TypeVar("R")

try:
    from django.core.exceptions import AppRegistryNotReady, ImproperlyConfigured
    from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connections, transaction
    from django.db.models import Q
    from django.utils import timezone
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the django-db storage needs Django: pip install 'celery-triggers[django]'") from exc
try:
    from . import sql
    from .deadlines import DBDeadlines  # its models too
    from .keys import insert_key, stored_key
    from .models import Session, TaskInstance, TaskRecord, TriggerRecord, Waiting
    from .reading import DBReading
    from .sql import Statements
except (ImproperlyConfigured, AppRegistryNotReady, RuntimeError) as exc:
    raise ConfigurationError(
        "django-db:// needs a configured Django project with 'celery_triggers.contrib.django' in "
        "INSTALLED_APPS: set DJANGO_SETTINGS_MODULE and call django.setup() first (a worker started "
        f"with Celery's Django fix-up does) ({exc})"
    ) from None

__all__ = ["DjangoDBStorage"]

#: ``UPDATE ... RETURNING`` (SQLite 3.35+).
_SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)


class _DBTxn(SessionTxn):
    def __init__(
        self, uid: str, alias: str, sid: int | None, configs: Any = None, used_keys: Any = None, written: Any = None
    ) -> None:
        super().__init__(uid)
        self.sql: Statements | None = written  # this database's written-out statements (None: the ORM's)
        #: Idempotency keys: a first attempt assumes a key is new (None) and
        #: its INSERT finds out; the re-run after a used one knows it (a dict);
        #: a re-run that knows nothing (False) reads them.
        self.used_keys = used_keys
        self.alias = alias
        self.session_id = sid
        self.configs = configs
        #: Instances this transaction read while unstarted: they may have index rows.
        self.indexed: set[str] = set()

    def load_raw(self, needs: Needs) -> tuple[Mapping[str, Raw], Mapping[str, Raw], Mapping[str, Raw]]:
        sid = self.session_id
        if sid is None:
            return {}, {}, {}
        a = self.alias
        if self.sql is not None:
            with connections[a].cursor() as cursor:
                triggers_text, tasks_text, instances_text, unstarted = self.sql.load(cursor, sid, needs)
            self.indexed |= unstarted
            return triggers_text, tasks_text, instances_text
        instances: dict[str, Raw] = {}
        wanted = Q(name__in=needs.instances) if needs.instances else Q()
        if needs.waiting:
            pairs = Q()
            for task, trigger in needs.waiting:
                pairs |= Q(task=task, trigger=trigger)
            waiting = Waiting.objects.using(a).filter(pairs, session_id=sid).values("instance_id")
            wanted = wanted | Q(pk__in=waiting) if needs.instances else Q(pk__in=waiting)
        if needs.instances or needs.waiting:
            for row in TaskInstance.objects.using(a).filter(wanted, session_id=sid).values_list(*_COLUMNS):
                record = dict(zip(_COLUMNS, row, strict=True))
                name = record.pop("name")
                instances[name] = record
                if record["status"] == Status.UNSTARTED.value:
                    self.indexed.add(name)
        triggers_qs = TriggerRecord.objects.using(a).filter(session_id=sid)
        if not needs.all_triggers:
            triggers_qs = triggers_qs.filter(name__in=needs.triggers) if needs.triggers else triggers_qs.none()
        triggers: dict[str, Raw] = dict(triggers_qs.values_list("name", "data"))
        tasks: dict[str, Raw] = {}
        if needs.tasks:
            qs = TaskRecord.objects.using(a).filter(session_id=sid, name__in=needs.tasks)
            tasks = dict(qs.values_list("name", "data"))
        return triggers, tasks, instances

    def _session(self) -> int:
        """The session row's id, creating the row on the first write (a
        concurrent creator makes this fail with an IntegrityError: the
        operation re-runs and finds the row)."""
        if self.session_id is None:
            now = timezone.now()
            self.session_id = Session.objects.using(self.alias).create(uid=self.uid, created_at=now, updated_at=now).pk
        return self.session_id

    def write_raw(
        self, triggers: dict[str, dict[str, Any]], tasks: dict[str, dict[str, Any]], instances: dict[str, Instance]
    ) -> None:
        a, sid = self.alias, self._session()
        if self.sql is not None:
            with connections[a].cursor() as cursor:
                self.sql.write(cursor, sid, triggers, tasks, instances, self.indexed)
            return
        for model, records in ((TriggerRecord, triggers), (TaskRecord, tasks)):
            if records:
                model.objects.using(a).bulk_create(
                    [model(session_id=sid, name=k, data=v) for k, v in records.items()],
                    update_conflicts=True,
                    unique_fields=("session", "name"),
                    update_fields=("data",),
                )
        if not instances:
            return
        TaskInstance.objects.using(a).bulk_create(
            [TaskInstance(session_id=sid, name=k, **TaskInstance.fields_of(i)) for k, i in instances.items()],
            update_conflicts=True,
            unique_fields=("session", "name"),
            update_fields=_COLUMNS[1:],
        )
        # The index: rows for what is unstarted now, none for what was (only those can have rows).
        reindex = [k for k, i in instances.items() if i.status is Status.UNSTARTED or k in self.indexed]
        if not reindex:
            return
        ids = dict(TaskInstance.objects.using(a).filter(session_id=sid, name__in=reindex).values_list("name", "pk"))
        if self.indexed.intersection(reindex):
            Waiting.objects.using(a).filter(session_id=sid, instance_id__in=ids.values()).delete()
        rows = [
            Waiting(session_id=sid, task=instances[k].task, trigger=trigger, instance_id=ids[k])
            for k in reindex
            if instances[k].status is Status.UNSTARTED
            for trigger in instances[k].awaiting
        ]
        if rows:
            Waiting.objects.using(a).bulk_create(rows)

    def read_key_raw(self, key: str) -> str | None:
        if isinstance(self.used_keys, dict):
            return self.used_keys.get(key)
        if self.session_id is None or self.used_keys is None:
            return None  # checked by the INSERT (write_key_raw): no read
        return stored_key(self.alias, self.session_id, key)

    def write_key_raw(self, key: str, text: str) -> None:
        """Record ``key`` with one INSERT that does nothing if it is used
        (the session's row is locked: only a committed fire can have used
        it); then :class:`Conflict` re-runs the operation, told what the
        key's first fire stored."""
        sid = self._session()
        if insert_key(self.alias, sid, key, text):
            return
        known = self.used_keys if isinstance(self.used_keys, dict) else {}
        used = Conflict(f"session {self.uid!r}: idempotency key {key!r} is used; re-run")
        used.fresh = {**known, key: stored_key(self.alias, sid, key)}
        raise used

    def read_configs_raw(self) -> str | None:
        if self.configs is None:
            return None
        return self.configs if isinstance(self.configs, str) else dumps(self.configs)

    def write_configs_raw(self, text: str) -> None:
        Session.objects.using(self.alias).filter(pk=self._session()).update(configs=loads(text))
        self.configs = text


_COLUMNS = ("name", "task", "number", "status", "kwargs", "result", "metadata", "awaiting", "unless_fired")


class DjangoDBStorage(DBReading, DBDeadlines, StorageBackend):
    """``django-db://`` (the ``default`` database) or ``django-db://<alias>``."""

    #: The database could not be reached: connection refused, lost or timed out.
    connection_errors = (OperationalError, InterfaceError)
    #: ... except what these say (lower case): a missing table or database,
    #: refused credentials, a statement over SQLite's parameter limit.
    _NOT_TRANSIENT = ("no such table", "does not exist", "authentication failed", "permission denied", "too many sql")

    def __init__(self, url: str, **_: Any):
        super().__init__(url)
        parts = urlsplit(url)
        self.alias = django_alias(url, "django-db")
        options = dict(parse_qsl(parts.query))
        #: Inside the caller's transaction: "defer" (join it, send on its
        #: commit), "allow" (join it, send at once) or "refuse".
        self.outer_atomic = options.pop("outer_atomic", "defer")
        if self.outer_atomic not in ("defer", "allow", "refuse"):
            raise InvalidStorageURL(
                f"django-db storage {mask_url(url)!r}: outer_atomic must be defer, allow or refuse, "
                f"got {self.outer_atomic!r}"
            )
        self._pid = os.getpid()
        if options:
            raise InvalidStorageURL(f"django-db storage {mask_url(url)!r}: unknown option(s) {sorted(options)}")
        from django.conf import settings

        if self.alias not in settings.DATABASES:
            known = ", ".join(sorted(settings.DATABASES))
            raise InvalidStorageURL(
                f"django-db storage {mask_url(url)!r}: no database {self.alias!r} in settings.DATABASES "
                f"(known: {known})"
            )
        # The app itself is checked on import: the models need it in INSTALLED_APPS.

    def process_local_reason(self) -> str | None:
        from django.conf import settings

        database = settings.DATABASES[self.alias]
        name = str(database.get("NAME") or "")
        if "sqlite" in str(database.get("ENGINE", "")) and (name == ":memory:" or "mode=memory" in name):
            return f"django-db://{self.alias} is an in-memory SQLite database: it lives in one process"
        return None

    async def run_sync(self, fn: Callable[..., R], *args: Any) -> R:
        """In the thread Django runs synchronous code in from async views
        (``sync_to_async(thread_sensitive=True)``), as Django asks of ORM
        calls from async code: the connection is that thread's, handled as
        Django handles it, not one per executor thread."""
        from asgiref.sync import sync_to_async

        result: R = await sync_to_async(fn, thread_sensitive=True)(*args)
        return result

    # -- transactions -------------------------------------------------------
    def _prepare(self, uid: str) -> Any:
        connection = connections[self.alias]
        if self._pid != os.getpid():  # a forked process (a prefork pool child): never use the parent's socket
            self._pid = os.getpid()
            connection.connection = None  # dropped, not closed: closing would end the parent's session too
        if connection.in_atomic_block and self.outer_atomic == "refuse":
            raise StorageError(
                f"session {uid!r}: django-db storage called inside transaction.atomic() with "
                "?outer_atomic=refuse. Fire from transaction.on_commit(...) (app.triggers.fire_on_commit)"
            )
        return connection

    def after_caller_commit(self, send: Callable[[], None]) -> bool:
        """Inside the caller's ``transaction.atomic`` (which the operation
        joined), ``send`` waits for its commit; a rollback drops it."""
        if self.outer_atomic != "defer" or not connections[self.alias].in_atomic_block:
            return False
        transaction.on_commit(send, using=self.alias)
        return True

    @contextmanager
    def transaction(self, uid: str, prefetch: Prefetch = (), cached: object = None) -> Iterator[SessionTxn]:
        yield from self._transaction(uid, write=True, used_keys=cached)

    def read_transaction(self, uid: str, prefetch: Prefetch = ()) -> AbstractContextManager[SessionTxn]:
        return contextmanager(self._transaction)(uid, write=False)

    def _transaction(self, uid: str, *, write: bool, touch: bool = True, used_keys: Any = False) -> Iterator[_DBTxn]:
        connection = self._prepare(uid)
        try:
            with transaction.atomic(using=self.alias):
                locked = self._lock(uid, connection, write=write, touch=touch)
                yield _DBTxn(uid, self.alias, *locked, used_keys, sql.statements(self.alias, connection))
        except IntegrityError as exc:
            raise Conflict(f"session {uid!r}: created concurrently; re-run") from exc
        except OperationalError as exc:
            if connection.vendor == "sqlite" and "locked" in str(exc):  # SQLite's busy timeout ran out
                raise Conflict(f"session {uid!r}: SQLite stayed locked; re-run") from exc
            raise self._error(uid, exc, connection) from exc
        except DatabaseError as exc:
            raise self._error(uid, exc, connection) from exc

    def _lock(self, uid: str, connection: Any, *, write: bool, touch: bool) -> tuple[int | None, Any]:
        """Lock the session's row, if it exists; its id and own configs. A
        write marks the row changed (``touch``: its last change is now) in
        the same statement: one round trip, and on SQLite it takes the write
        lock before anything is read."""
        table = connection.ops.quote_name(Session._meta.db_table)
        value, params = (
            ("%s", [connection.ops.adapt_datetimefield_value(timezone.now())]) if touch else ("updated_at", [])
        )
        update = f"UPDATE {table} SET updated_at = {value} WHERE uid = %s"  # noqa: S608 - the table's quoted name only
        select = f"SELECT id, configs FROM {table} WHERE uid = %s"  # noqa: S608 - the table's quoted name only
        vendor = connection.vendor
        with connection.cursor() as cursor:
            if write and (vendor == "postgresql" or (vendor == "sqlite" and _SQLITE_RETURNING)):
                cursor.execute(update + " RETURNING id, configs", [*params, uid])
            elif vendor == "sqlite":
                if write:  # SQLite before 3.35: the write first, then the read
                    cursor.execute(update, [*params, uid])
                cursor.execute(select, [uid])
            else:
                rows = Session.objects.using(self.alias).select_for_update().filter(uid=uid)
                found = rows.values_list("pk", "configs").first()
                if found is not None and write and touch:
                    rows.update(updated_at=timezone.now())
                return (None, None) if found is None else (found[0], found[1])
            row = cursor.fetchone()
        return (None, None) if row is None else (row[0], row[1])

    def is_connection_error(self, exc: BaseException) -> bool:
        """The database driver says "unreachable" with ``OperationalError``,
        as it says "no such table" or "password authentication failed":
        those (a missing table or database, refused credentials) would fail
        again, so they are not connection errors."""
        text = str(exc).lower()
        return super().is_connection_error(exc) and not any(marker in text for marker in self._NOT_TRANSIENT)

    def _error(self, uid: str | None, exc: DatabaseError, connection: Any = None) -> StorageError:
        where = f"session {uid!r}: " if uid is not None else ""
        if connection is not None and not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()  # a broken connection: the next operation reconnects
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "no such table" in text or "does not exist" in text:
            text += " (run manage.py migrate)"
        return self.storage_error(exc, f"{where}django-db storage ({self.alias}) failed: {text}")

    # -- inspection and lifecycle ---------------------------------------------
    def _guarded(self, uid: str | None, query: Any) -> Any:
        connection = self._prepare(uid or "")
        try:
            return query()
        except DatabaseError as exc:
            raise self._error(uid, exc, connection) from exc

    def instances(self, uid: str) -> dict[str, Instance]:
        check_uid(uid)
        with self.read_transaction(uid) as txn:
            assert isinstance(txn, _DBTxn)
            rows = TaskInstance.objects.using(self.alias).filter(session_id=txn.session_id)
            return {row.name: decode_instance(uid, row.name, row.to_record()) for row in rows}

    def _locked(self, uid: str) -> AbstractContextManager[_DBTxn]:
        """A write transaction that does not count as a change (deletes)."""
        return contextmanager(self._transaction)(uid, write=True, touch=False)

    def delete_session(self, uid: str) -> None:
        check_uid(uid)
        with self._locked(uid):
            Session.objects.using(self.alias).filter(uid=uid).delete()

    def delete_if_idle(self, uid: str, cutoff: float, *, dry_run: bool = False) -> bool:
        check_uid(uid)
        with self._locked(uid) as txn:
            if txn.session_id is None:
                return False
            session = Session.objects.using(self.alias).get(pk=txn.session_id)
            busy = session.instances.filter(status__in=(Status.SCHEDULED.value, Status.RUNNING.value)).exists()
            if busy or session.updated_at >= dt.datetime.fromtimestamp(cutoff, tz=dt.UTC):
                return False
            if not dry_run:
                session.delete()
        return True

    def close(self) -> None:
        connections[self.alias].close_if_unusable_or_obsolete()
