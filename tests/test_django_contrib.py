"""The Django contrib app: installation, the django-db storage's rules, and
the admin through Django's test client (the browser test is in
test_django_browser.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from celery_triggers import InvalidStorageURL, Status, StorageError

from .conftest import fresh_django_db


@pytest.fixture
def eager(django_caches: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[Celery]:
    """The eager app of tests.django_app as the project's Celery app, on an
    empty django-db://default."""
    fresh_django_db(request, "default")
    from django.test.utils import override_settings, setup_test_environment

    from tests.django_app import eager_app

    try:
        setup_test_environment()  # the test client records templates' contexts
    except RuntimeError:
        pass  # already set up in this process

    with override_settings(CELERY_TRIGGERS_APP="tests.django_app:eager_app"):
        yield eager_app


@pytest.fixture
def users(eager: Celery) -> dict[str, Any]:
    from django.contrib.auth.models import Permission, User

    User.objects.all().delete()
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_session", content_type__app_label="celery_triggers")
    )
    return {
        "boss": User.objects.create_superuser("boss", password="pw"),
        "viewer": viewer,
        "outsider": User.objects.create_user("outsider", password="pw"),
    }


def _client(user: Any, csrf: bool = False) -> Any:
    from django.test import Client

    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def _page(pk: int) -> str:
    return f"/admin/celery_triggers/session/{pk}/change/"


def _session(uid: str) -> Any:
    from celery_triggers.contrib.django.models import Session

    return Session.objects.get(uid=uid)


def _failed_and_finished(app: Celery) -> None:
    app.triggers.fire("s-failed", "applied", {"ok": False})
    app.triggers.fire("s-ok", "applied", {"ok": True})


def test_migrations_match_the_models(django_caches: dict[str, Any]) -> None:
    from django.core.management import call_command

    call_command("makemigrations", "celery_triggers", "--check", "--dry-run", verbosity=0)


def test_ready_installed_the_extension_on_the_project_app(eager: Celery) -> None:
    from django.apps import apps

    from celery_triggers.contrib.django.integration import install

    assert apps.get_app_config("celery_triggers").name == "celery_triggers.contrib.django"
    bare = Celery("bare", set_as_current=False)
    from django.test.utils import override_settings

    import tests.django_app

    tests.django_app.bare = bare  # type: ignore[attr-defined]  # a project app without the extension yet
    with override_settings(CELERY_TRIGGERS_APP="tests.django_app:bare"):
        assert install() is bare
    assert "triggers" in bare.__dict__ and install() is not None  # installed once, idempotent


def test_a_fire_inside_the_callers_transaction_joins_it_and_runs_after_its_commit(eager: Celery) -> None:
    from django.db import transaction

    from celery_triggers.contrib.django.models import Session

    with transaction.atomic():
        eager.triggers.fire("inside", "applied", {"ok": True})
        assert Session.objects.filter(uid="inside").exists(), "written in the caller's transaction"
        session = eager.triggers.session("inside")
        assert session.instance("t_score#0").status is Status.SCHEDULED, "nothing runs before the commit"
        on_commit = eager.triggers.fire_on_commit
        on_commit("later", "applied", {"ok": True})
        assert not Session.objects.filter(uid="later").exists()
    assert session.instance("t_notify#0").status is Status.FINISHED
    assert eager.triggers.session("later").instance("t_notify#0").status is Status.FINISHED


def test_outer_atomic_refuse_keeps_the_old_rule(django_caches: dict[str, Any], request: pytest.FixtureRequest) -> None:
    from django.db import transaction

    from .conftest import make_app

    app = make_app(fresh_django_db(request, "default") + "?outer_atomic=refuse")
    with transaction.atomic(), pytest.raises(StorageError, match="on_commit"):
        app.triggers.fire("inside", "applied")
    from celery_triggers.storage import resolve_storage

    with pytest.raises(InvalidStorageURL, match="outer_atomic must be defer, allow or refuse"):
        resolve_storage("django-db://default?outer_atomic=maybe")


def test_the_sessions_list_counts_and_filters(users: dict[str, Any], eager: Celery) -> None:
    _failed_and_finished(eager)
    client = _client(users["boss"])
    listing = "/admin/celery_triggers/session/"
    page = client.get(listing).content.decode()
    assert "s-failed" in page and "s-ok" in page
    rows = {row.uid: row for row in client.get(listing).context["cl"].result_list}
    assert (rows["s-failed"].n_instances, rows["s-failed"].n_failed, rows["s-failed"].n_unresolved) == (1, 1, 1)
    assert (rows["s-ok"].n_instances, rows["s-ok"].n_failed, rows["s-ok"].n_unresolved) == (2, 0, 0)
    for query, expected in [
        ("failed=yes", {"s-failed"}),
        ("failed=no", {"s-ok"}),
        ("unresolved=yes", {"s-failed"}),
        ("older_than=1h", set()),
    ]:
        found = {s.uid for s in client.get(f"{listing}?{query}").context["cl"].result_list}
        assert found == expected, query


def test_the_session_page_shows_instances_the_graph_and_forms_by_permission(
    users: dict[str, Any], eager: Celery
) -> None:
    _failed_and_finished(eager)
    pk = _session("s-failed").pk
    page = _client(users["boss"]).get(_page(pk)).content.decode()
    assert 'data-instance="t_score#0" data-status="failed"' in page
    assert "ValueError: not ok" in page and "Traceback" in page
    assert 'data-name="t_score" data-state="failed"' in page and 'data-name="applied" data-state="fired"' in page
    assert 'class="ct-replay"' in page and 'class="deletelink ct-delete"' in page
    viewer = _client(users["viewer"]).get(_page(pk))
    assert viewer.status_code == 200 and "t_score#0" in viewer.content.decode()
    assert 'class="ct-replay"' not in viewer.content.decode() and "ct-delete" not in viewer.content.decode()
    outsider = _client(users["outsider"]).get(_page(pk))
    assert outsider.status_code == 302 and "/admin/login/" in outsider["Location"]


def _post(client: Any, pk: int, action: str, **form: str) -> Any:
    return client.post(f"/admin/celery_triggers/session/{pk}/do/{action}/", form)


def test_replay_with_kwargs_is_a_csrf_checked_logged_post_that_needs_change_permission(
    users: dict[str, Any], eager: Celery
) -> None:
    from django.contrib.admin.models import LogEntry

    _failed_and_finished(eager)
    pk = _session("s-failed").pk
    kwargs = '{"applied": {"ok": true}}'
    assert _post(_client(users["viewer"]), pk, "replay", instance="t_score#0", kwargs=kwargs).status_code == 403
    assert _client(users["boss"]).get(f"/admin/celery_triggers/session/{pk}/do/replay/").status_code == 405
    boss = _client(users["boss"], csrf=True)
    assert _post(boss, pk, "replay", instance="t_score#0", kwargs=kwargs).status_code == 403  # no CSRF token
    session = eager.triggers.session("s-failed")
    assert session.instance("t_score#0").status is Status.FAILED, "refused posts changed nothing"
    boss.get(_page(pk))
    token = boss.cookies["csrftoken"].value
    reply = _post(boss, pk, "replay", instance="t_score#0", kwargs=kwargs, csrfmiddlewaretoken=token)
    assert reply.status_code == 302 and reply["Location"] == _page(pk)
    assert session.instance("t_score#0").status is Status.REPLAYED
    assert session.instance("t_score#1").status is Status.FINISHED
    assert session.instance("t_notify#0").result == "score 7"
    entry = LogEntry.objects.get(object_id=str(pk))
    assert entry.user.username == "boss" and "replayed t_score#0 as t_score#1" in entry.get_change_message()


def test_skip_recover_redispatch_and_delete(users: dict[str, Any], eager: Celery) -> None:
    from django.contrib.admin.models import LogEntry

    _failed_and_finished(eager)
    pk = _session("s-failed").pk
    boss = _client(users["boss"])
    reply = _post(boss, pk, "skip", instance="t_score#0", cascade="on", result='{"score": 1}')
    assert reply.status_code == 302
    session = eager.triggers.session("s-failed")
    assert session.instance("t_score#0").status is Status.SKIPPED
    assert session.instance("t_notify#0").result == "score 1"
    assert _post(boss, pk, "skip", instance="t_score#0").status_code == 302  # refused: already skipped
    messages = [str(m) for m in boss.get(_page(pk)).context["messages"]]
    assert any("only a failed instance can be skipped" in m for m in messages), messages
    assert _post(boss, pk, "replay", instance="t_score#0", kwargs="{not json").status_code == 302
    assert session.instance("t_score#0").status is Status.SKIPPED, "bad JSON changed nothing"
    assert _post(boss, pk, "recover", older_than="0").status_code == 302
    assert "recover: nothing to recover" in [e.get_change_message() for e in LogEntry.objects.all()]
    assert _post(boss, pk, "redispatch", instance="t_notify#0").status_code == 302  # eager: it ran already
    messages = [str(m) for m in boss.get(_page(pk)).context["messages"]]
    assert any("only a scheduled instance can be re-sent" in m for m in messages), messages
    viewer = _client(users["viewer"])
    assert _post(viewer, pk, "delete").status_code == 403
    reply = _post(boss, pk, "delete")
    assert reply.status_code == 302 and reply["Location"] == "/admin/celery_triggers/session/"
    assert session.instances == {}
    from celery_triggers.contrib.django.models import Session

    assert not Session.objects.filter(uid="s-failed").exists()


@pytest.mark.parametrize("alias", ["default", "pg"])
def test_purge_deletes_what_is_old_and_idle_and_its_check_is_no_change(
    django_caches: dict[str, Any], request: pytest.FixtureRequest, alias: str
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from celery_triggers.contrib.django.models import Session, TaskInstance

    from .conftest import make_app

    app = make_app(fresh_django_db(request, alias))
    app.triggers.configure({"t_x": {"after": ["a", "b"], "run": "tests.x"}})
    for uid in ("old", "recent"):
        app.triggers.fire(uid, "a")
    hour_ago = timezone.now() - timedelta(hours=1)
    Session.objects.using(alias).filter(uid="old").update(updated_at=hour_ago)
    assert app.triggers.purge(60, dry_run=True) == ["old"]
    assert Session.objects.using(alias).get(uid="old").updated_at == hour_ago, "a dry run changes nothing"
    assert app.triggers.purge(60) == ["old"]
    assert [s.uid for s in Session.objects.using(alias).all()] == ["recent"]
    assert not TaskInstance.objects.using(alias).filter(session__uid="old").exists()


def test_bad_django_db_urls_and_an_unconfigured_django_are_typed_errors(django_caches: dict[str, Any]) -> None:
    import subprocess
    import sys

    from celery_triggers import InvalidStorageURL
    from celery_triggers.storage import resolve_storage

    from .conftest import ROOT

    with pytest.raises(InvalidStorageURL, match=r"no database 'nope' in settings\.DATABASES"):
        resolve_storage("django-db://nope")
    with pytest.raises(InvalidStorageURL, match=r"unknown option\(s\) \['colour'\]"):
        resolve_storage("django-db://default?colour=blue")
    code = (
        "from celery_triggers.storage import resolve_storage\n"
        "from celery_triggers import ConfigurationError\n"
        "try:\n    resolve_storage('django-db://')\n"
        "except ConfigurationError as exc:\n    print('refused:', exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "refused: django-db:// needs a configured Django project" in out.stdout


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")  # only read here: no connection is made
def test_an_in_memory_sqlite_database_is_refused_by_workers(django_caches: dict[str, Any]) -> None:
    from django.conf import settings
    from django.test.utils import override_settings

    from celery_triggers.storage import resolve_storage

    assert resolve_storage("django-db://default").process_local_reason() is None
    memory = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    with override_settings(DATABASES={**settings.DATABASES, "mem": memory}):
        reason = resolve_storage("django-db://mem").process_local_reason()
    assert reason is not None and "in-memory SQLite" in reason


def test_the_admin_lists_and_acts_on_the_database_the_app_keeps_sessions_in(
    users: dict[str, Any], eager: Celery, request: pytest.FixtureRequest
) -> None:
    from django.test.utils import override_settings

    import tests.django_app

    from .conftest import make_app

    on_pg = make_app(fresh_django_db(request, "pg"))
    on_pg.triggers.configure({"t_x": {"after": ["a", "b"], "run": "tests.x"}})
    tests.django_app.pg_app = on_pg  # type: ignore[attr-defined]  # a project whose sessions live in "pg"
    eager.triggers.fire("in-default", "applied", {"ok": True})
    on_pg.triggers.fire("in-pg", "a")
    boss = _client(users["boss"])
    with override_settings(CELERY_TRIGGERS_APP="tests.django_app:pg_app"):
        listed = [s.uid for s in boss.get("/admin/celery_triggers/session/").context["cl"].result_list]
        assert listed == ["in-pg"]
        from celery_triggers.contrib.django.models import Session

        pk = Session.objects.using("pg").get(uid="in-pg").pk
        assert 'data-instance="t_x#0" data-status="unstarted"' in boss.get(_page(pk)).content.decode()
        assert _post(boss, pk, "delete").status_code == 302
    assert not Session.objects.using("pg").filter(uid="in-pg").exists()
    assert Session.objects.using("default").filter(uid="in-default").exists()


def test_an_async_view_fires_with_afire_into_the_database(eager: Celery) -> None:
    """Django's AsyncClient calls an async view that awaits ``afire`` on
    django-db://: no SynchronousOnlyOperation (the ORM runs in Django's
    thread for synchronous code), the eager cascade ran, and the rows are
    there."""
    import asyncio

    from django.test import AsyncClient

    async def call() -> Any:
        return await AsyncClient().get("/applied/async-1/", {"ok": "1"})

    response = asyncio.run(call())
    assert response.status_code == 200, response.content
    assert response.json() == {"scheduled": ["t_score#0"]}
    instances = eager.triggers.session("async-1").instances
    assert {n: i.status.value for n, i in instances.items()} == {"t_score#0": "finished", "t_notify#0": "finished"}
    assert _session("async-1").uid == "async-1"


def test_the_session_page_shows_every_time_in_the_projects_time_zone_and_names_it(
    users: dict[str, Any], eager: Celery
) -> None:
    import re
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from django.test.utils import override_settings

    _failed_and_finished(eager)
    pk = _session("s-failed").pk
    with override_settings(TIME_ZONE="Asia/Kolkata"):  # UTC+05:30: no zone is mistaken for it
        page = _client(users["boss"]).get(_page(pk)).content.decode()
    shown = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page)
    assert len(shown) >= 4, "created, last change and the instance's times"
    now = datetime.now(ZoneInfo("Asia/Kolkata")).replace(tzinfo=None)
    for text in shown:
        assert abs(datetime.strptime(text, "%Y-%m-%d %H:%M:%S") - now) < timedelta(minutes=5), (text, now)
    assert "Asia/Kolkata" in page and "(UTC)" not in page
