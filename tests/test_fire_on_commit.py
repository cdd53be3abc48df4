"""Firing from inside a Django transaction: ``fire_on_commit`` (any
storage) and a plain ``fire`` joining the transaction on ``django-db://``,
with a real worker on the Redis broker, on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from celery import Celery

from celery_triggers import DispatchError, InvalidKey, InvalidName, Status
from celery_triggers.core.dispatch import Dispatch
from celery_triggers.producer.runners import TaskRunner

from .conftest import Worker, fresh_django_db, make_app, wait_for


class Rollback(Exception):
    """Raised to roll a test's transaction back."""


@pytest.fixture(params=["default", "pg"])
def on_db(
    request: pytest.FixtureRequest, django_caches: dict[str, Any], tmp_path: Path
) -> Iterator[tuple[str, Celery, Worker]]:
    """(database alias, the producer's app on ``django-db://<alias>``, a
    real worker running the same app)."""
    alias = request.param
    fresh_django_db(request, alias)
    from tests.django_commit_app import build

    worker = Worker(tmp_path, app="tests.django_commit_app", CT_DJANGO_DB=alias)
    worker.start()
    try:
        yield alias, build(alias), worker
    finally:
        worker.discard()


def _runs(worker: Worker) -> list[str]:
    runs = worker.data / "runs.txt"
    return runs.read_text().split() if runs.exists() else []


def _sessions(alias: str) -> set[str]:
    from celery_triggers.contrib.django.models import Session

    return set(Session.objects.using(alias).values_list("uid", flat=True))


@pytest.mark.slow
def test_a_fire_inside_atomic_joins_it_rollback_leaves_no_trace_and_commit_runs(
    on_db: tuple[str, Celery, Worker],
) -> None:
    from django.db import transaction

    alias, app, worker = on_db
    gone, kept, later = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("gone", "kept", "later"))

    with pytest.raises(Rollback), transaction.atomic(using=alias):
        fired = app.triggers.fire(gone, "paid", {"n": 1}, key="pay-1")
        assert [i.name for i in fired] == ["t_ship#0"]
        assert gone in _sessions(alias), "written in the caller's transaction"
        app.triggers.fire_on_commit(gone, "paid", {"n": 2}, using=alias)
        raise Rollback
    assert gone not in _sessions(alias), "the rollback took the session with it"

    with transaction.atomic(using=alias):
        app.triggers.fire(kept, "paid", {"n": 1})
        app.triggers.fire_on_commit(later, "paid", {"n": 1}, key="k", using=alias)
        assert later not in _sessions(alias), "fire_on_commit fires nothing before the commit"
        assert app.triggers.session(kept).instance("t_ship#0").status is Status.SCHEDULED
        assert _runs(worker) == [], "no message before the commit"
    for uid in (kept, later):
        # The body writes its run before the worker records the finish: wait for the finish itself.
        wait_for(
            lambda: app.triggers.session(uid).instance("t_ship#0").status is Status.FINISHED,  # noqa: B023 - waited for here
            30,
            f"{uid}'s instance to finish after the commit",
        )
        assert uid in _runs(worker), f"{uid}'s body ran"
    assert gone not in _runs(worker), "no body ran for the rolled-back fires"
    assert sorted(_runs(worker)) == sorted([kept, later])


class Refuse(TaskRunner):
    """A broker that refuses every message."""

    name = "refuse"
    tried: ClassVar[list[str]] = []

    def dispatch(self, items: list[Dispatch]) -> None:
        Refuse.tried.extend(i.instance.name for i in items)
        raise DispatchError("broker down", [i.instance.name for i in items])


def test_a_message_refused_after_the_commit_is_logged_and_its_instance_stays_scheduled(
    django_caches: dict[str, Any], request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import transaction

    app = make_app(fresh_django_db(request, "default"), runner=f"{__name__}:Refuse")
    app.triggers.configure({"t_ship": {"after": ["paid"], "run": "tests.commit.ship"}})
    Refuse.tried.clear()
    with caplog.at_level(logging.ERROR), transaction.atomic():
        fired = app.triggers.fire("refused", "paid")  # returns: the messages wait for the commit
        assert [i.name for i in fired] == ["t_ship#0"] and Refuse.tried == []
    assert Refuse.tried == ["t_ship#0"]
    assert "stay scheduled for the recovery sweep" in caplog.text and "refused" in caplog.text
    assert app.triggers.session("refused").instance("t_ship#0").status is Status.SCHEDULED
    with pytest.raises(DispatchError):  # outside a transaction: the caller hears of it, as before
        app.triggers.fire("refused-2", "paid")


def test_fire_on_commit_works_with_any_storage_and_checks_the_event_now(
    django_caches: dict[str, Any], tmp_path: Path
) -> None:
    from django.db import transaction

    app = make_app(f"sqlite:///{tmp_path / 't.sqlite3'}", runner=f"{__name__}:Record")
    Record.sent.clear()
    app.triggers.configure({"t_ship": {"after": ["paid"], "run": "tests.commit.ship"}})
    kwargs = {"n": 1}
    with pytest.raises(Rollback), transaction.atomic():
        app.triggers.fire_on_commit("s1", "paid", kwargs)
        raise Rollback
    with transaction.atomic():
        app.triggers.fire_on_commit("s1", "paid", kwargs, key="once")
        app.triggers.fire_on_commit("s1", "paid", kwargs, key="once")
        kwargs["n"] = 99  # changed after the call: not what fires
        assert app.triggers.session("s1").instances == {}
        with pytest.raises(InvalidName):
            app.triggers.fire_on_commit("s1", "")
        with pytest.raises(InvalidKey):
            app.triggers.fire_on_commit("s1", "paid", key="")
    instances = app.triggers.session("s1").instances
    assert list(instances) == ["t_ship#0"], "one fire: the rollback dropped one, the key the other"
    assert instances["t_ship#0"].kwargs == {"paid": {"n": 1}}
    assert Record.sent == ["t_ship#0"]


def test_fire_on_commit_logs_a_failure_after_the_commit_and_runs_the_other_callbacks(
    django_caches: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import transaction

    app = make_app(f"sqlite:///{tmp_path / 't.sqlite3'}", runner=f"{__name__}:Refuse")
    app.triggers.configure({"t_ship": {"after": ["paid"], "run": "tests.commit.ship"}})
    after: list[str] = []
    with caplog.at_level(logging.ERROR), transaction.atomic():
        app.triggers.fire_on_commit("s2", "paid")
        transaction.on_commit(lambda: after.append("ran"))
    assert after == ["ran"] and "broker down" in caplog.text
    assert app.triggers.session("s2").instance("t_ship#0").status is Status.SCHEDULED


class Record(TaskRunner):
    """Sends nothing; records what was dispatched."""

    name = "record"
    sent: ClassVar[list[str]] = []

    def dispatch(self, items: list[Dispatch]) -> None:
        Record.sent.extend(i.instance.name for i in items)
