"""``django-db://``'s written-out statements (``contrib/django/sql.py``)
store exactly what the ORM's path stores, on SQLite and PostgreSQL: the
same rows in every table, the ``Waiting`` index included, through every
kind of write (a fire nobody listens to, an instance created, fired again
while it waits, completed, run and finished with a result, failed, replayed, skipped)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from celery_triggers import trigger_task

from .conftest import fresh_django_db, make_app

pytestmark = pytest.mark.usefixtures("django_caches")


@contextlib.contextmanager
def _sqlite_limit(alias: str, limit: int) -> Iterator[None]:
    """The SQLite database of ``alias`` held to ``limit`` parameters per
    statement while the block runs, on a new connection (sqlite3 reuses
    statements prepared before a limit without checking them)."""
    import sqlite3

    from django.db import connections

    connection = connections[alias]
    connection.close()
    connection.ensure_connection()
    held = connection.connection
    before = held.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    held.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    try:
        yield
    finally:
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed after an error: its successor has no limit
            held.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, before)


def _scenario(url: str) -> list[str]:
    app = make_app(url)

    @trigger_task(after=["a", "b", "c"], with_params={"a": {"tag": "ü"}})
    @app.task(shared=False, name="proj.three")
    def three(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        return trigger_kwargs

    @trigger_task(after=["t_three"], and_every="again", unless=["stop"])
    @app.task(shared=False, name="proj.next")
    def next_(trigger_kwargs: dict[str, Any]) -> None:
        return None

    for n in range(3):  # one fire creates three instances at once (rows split under a low parameter limit)

        @trigger_task(after=["wide", "wider"], name=f"t_wide{n}")
        @app.task(shared=False, name=f"proj.wide{n}")
        def wide(trigger_kwargs: dict[str, Any]) -> None:
            return None

    @trigger_task(after=["b", "c"])
    @app.task(shared=False, name="proj.pair")
    def pair(trigger_kwargs: dict[str, Any]) -> int:
        raise ValueError("fails on purpose")

    sessions = ["s-one", "s-two"]
    for uid in sessions:
        session = app.triggers.session(uid)
        session.fire("nobody", {"x": [1, {"y": None}]})
        session.fire("a", {"n": 1})  # creates t_three#0, waiting for b and c
        session.fire("b", {"n": 2})  # still waiting (for c): its index rows change
        session.fire("again")  # t_next waits for t_three
        session.fire("c", {"n": 3})  # t_three runs; its finish starts t_next; t_pair fails
        session.fire("wide")  # three instances wait for "wider"
        session.fire("wider")  # and all three run
    app.triggers.session("s-two").fire("stop")
    app.triggers.session("s-one").replay_failed_instance("t_pair#0", kwargs_update={"b": {"n": 4}})
    app.triggers.session("s-two").skip_failed_instance("t_pair#0", cascade=True, result=[1])
    return sessions


def _tables(alias: str, uids: list[str]) -> dict[str, Any]:
    from celery_triggers.contrib.django.models import Session, TaskInstance, TaskRecord, TriggerRecord, Waiting

    found: dict[str, Any] = {}
    for uid in uids:
        sid = Session.objects.using(alias).get(uid=uid).pk
        instances = {}
        for row in TaskInstance.objects.using(alias).filter(session_id=sid):
            record = row.to_record()
            record["metadata"] = sorted(record["metadata"])  # times and task ids differ from run to run
            instances[row.name] = record
        found[uid] = {
            "triggers": dict(TriggerRecord.objects.using(alias).filter(session_id=sid).values_list("name", "data")),
            "tasks": dict(TaskRecord.objects.using(alias).filter(session_id=sid).values_list("name", "data")),
            "instances": instances,
            "waiting": sorted(
                Waiting.objects.using(alias).filter(session_id=sid).values_list("task", "trigger", "instance__name")
            ),
            "null_results": sorted(
                TaskInstance.objects.using(alias).filter(session_id=sid, result__isnull=True).values_list("name")
            ),
        }
    return found


@pytest.mark.parametrize("limit", [None, 25], ids=["one-statement", "parameter-limit-25"])
@pytest.mark.parametrize("alias", ["default", "pg"])
def test_the_written_out_statements_store_what_the_orm_stores(
    alias: str, limit: int | None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also under a parameter limit so low that writes of several rows are
    split (SQLite's limit, by which the ORM splits its writes too; on
    SQLite the database itself is held to it)."""
    from django.db import connections

    from celery_triggers.contrib.django import sql

    url = fresh_django_db(request, alias)
    connection = connections[alias]
    written = sql.statements(alias, connection)
    assert written is not None
    if limit is not None:
        monkeypatch.setattr(written, "max_params", limit)
    with (
        _sqlite_limit(alias, limit) if limit is not None and connection.vendor == "sqlite" else contextlib.nullcontext()
    ):
        written_out = _tables(alias, _scenario(url))
    assert written_out["s-one"]["waiting"] == [], "nothing waits at the end of s-one"
    assert written_out["s-two"]["instances"]["t_three#0"]["result"]["a"]["tag"] == "ü"
    assert written_out["s-one"]["instances"]["t_pair#0"]["status"] == "replayed"
    assert written_out["s-two"]["instances"]["t_pair#0"]["status"] == "skipped"

    assert all(
        written_out[uid]["instances"][f"t_wide{n}#0"]["status"] == "finished" for uid in written_out for n in (0, 1, 2)
    )
    fresh_django_db(request, alias)
    with monkeypatch.context() as patched:
        patched.setattr(sql, "statements", lambda alias, connection: None)  # the ORM's path
        through_orm = _tables(alias, _scenario(url))
    assert written_out == through_orm


@pytest.mark.parametrize("alias", ["default", "pg"])
def test_the_index_follows_each_instance_through_its_triggers(alias: str, request: pytest.FixtureRequest) -> None:
    """After each fire, ``Waiting`` holds a row per trigger each unstarted
    instance awaits, and nothing else (on PostgreSQL a fire that only adds
    or only drops rows writes in one statement, one that drops and adds
    rows of the same instances, as the second, in two)."""
    from celery_triggers import Status
    from celery_triggers.contrib.django.models import Waiting

    app = make_app(fresh_django_db(request, alias))

    @trigger_task(after=["a", "b", "c"])
    @app.task(shared=False, name="proj.three")
    def three(trigger_kwargs: dict[str, Any]) -> None:
        return None

    @trigger_task(after=["b", "c"], and_every="a")
    @app.task(shared=False, name="proj.every")
    def every(trigger_kwargs: dict[str, Any]) -> None:
        return None

    session = app.triggers.session("s-index")

    def rows() -> list[tuple[str, str]]:
        return sorted(Waiting.objects.using(alias).values_list("instance__name", "trigger"))

    def awaited() -> list[tuple[str, str]]:
        instances = session.instances.values()
        return sorted((i.name, t) for i in instances if i.status is Status.UNSTARTED for t in i.awaiting)

    session.fire("a")
    assert rows() == [("t_every#0", "b"), ("t_every#0", "c"), ("t_three#0", "b"), ("t_three#0", "c")]
    session.fire("b")  # rows dropped and rows kept for the same instances
    assert rows() == [("t_every#0", "c"), ("t_three#0", "c")]
    for trigger in ("a", "a", "c", "b", "c", "c"):
        session.fire(trigger)
        assert rows() == awaited()
    assert rows() == [], "every instance ran"
    statuses = {k: i.status.value for k, i in session.instances.items()}
    assert statuses == dict.fromkeys(("t_every#0", "t_every#1", "t_every#2", "t_three#0"), "finished")


def test_a_statement_over_sqlites_parameter_limit_is_a_plain_storage_error_that_changes_nothing(
    request: pytest.FixtureRequest,
) -> None:
    """Not StorageUnavailable (what a worker retries): it would fail again."""
    from celery_triggers import StorageError, StorageUnavailable

    app = make_app(fresh_django_db(request, "default"))

    @trigger_task(after=["go"])
    @app.task(shared=False, name="proj.one")
    def one(trigger_kwargs: dict[str, Any]) -> None:
        return None

    with _sqlite_limit("default", 3), pytest.raises(StorageError) as info:  # below one instance row's 10
        app.triggers.fire("s-limit", "go")
    assert not isinstance(info.value, StorageUnavailable), info.value
    assert "too many SQL variables" in str(info.value)
    assert app.triggers.session("s-limit").instances == {}, "the transaction rolled back"
