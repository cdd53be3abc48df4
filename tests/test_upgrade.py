"""Upgrades lose nothing: sessions stored by the previous release (0.1,
commit b2f51d4) read back with this code and finish correctly.

tests/upgrade_fixtures/0.1/ holds what that release stored, dumped per
backend (tests/upgrade_fixtures/README.md says how it was made and what each
session holds). Each test loads a dump into fresh storage, then compares
what this code reads with the table below (written from the scenario, not
read from the dump), or finishes every session as a worker and an operator
would: the awaited trigger fired, the scheduled instances started with the
token their message carried, the running one finished with its token, the
failed one replayed, the replay's clone run.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from celery import Celery

from celery_triggers import Hooks, Instance, StaleDispatch, TriggerManager

from . import upgrade_tasks
from .conftest import SHARED_BACKENDS, make_app, storage_url_for, wait_for

DUMPS = Path(__file__).parent / "upgrade_fixtures" / "0.1"

T0 = 1_796_083_200.0  # 2026-12-01 00:00 UTC: the fixed clock the sessions were written at
OLD = "celery@old-worker"  # the 0.1 worker that started instances
NEW = "celery@new-worker"  # this release's worker, here played by the test
S1, S2, S3, S4 = "upgrade-s1", "upgrade-s2", "upgrade-ünïcode-三", "upgrade-s4-idle"

#: The dispatch tokens (Celery task ids) 0.1 gave each dispatched instance.
TOKEN = {
    (S1, "t_registerManuscript#0"): "f38b2ffc-80a4-4f5a-91c9-bc701e7ea419",
    (S1, "t_typesetChapter#0"): "f3f49249-dc28-4f90-a5ae-c7978306d03b",
    (S1, "t_typesetChapter#1"): "e5121482-3929-4d22-a255-accb1a466884",
    (S2, "t_registerManuscript#0"): "6bad6be2-8e7a-46e9-9f19-950499dd251d",
    (S2, "t_welcomeAuthor#0"): "d7a7a3cc-8c3d-4f16-9293-de8fc88b2875",
    (S2, "t_syncCatalog#0"): "7dabe929-c4a3-44bf-86cd-75e9bb049a79",
    (S2, "t_syncCatalog#1"): "70eb9a0a-9626-4ae6-85e8-18fac0433cbd",
    (S3, "t_registerManuscript#0"): "14aa4e71-9d3c-4dec-80a6-1f933d6c51e3",
    (S3, "t_welcomeAuthor#0"): "1919e93a-d117-45ad-8988-93101c593af5",
    (S3, "t_sendGift#0"): "e4163207-d094-4996-82f0-ee99731c9452",
}

# -- what 0.1 stored ------------------------------------------------------------

S1_SUBMITTED = {
    "title": "Über Straßen — 東京の夜",
    "author": {"name": "Zoë Ñúñez", "languages": ["fr", "日本語"], "contact": {"email": None, "fax": None}},
    "pages": 312,
    "ratio": 0.75,
    "draft": True,
    "tags": [],
}
S1_REGISTERED = {
    "manuscriptId": "M-0042",
    "title": "Über Straßen — 東京の夜",
    "chapters": {"expected": 2, "names": ["Anfang", "終わり"]},
}
S1_CHAPTER_1 = {"chapter": 1, "title": "Anfang", "words": 4200}
S1_CHAPTER_2 = {"chapter": 2, "title": "終わり", "words": 3900, "layout": {"size": 12}}
S2_SUBMITTED = {"title": "Second Thoughts", "author": {"name": "Ana"}}
S2_SYNC = {"since": "2026-11-01", "ids": [3, 1, 2]}
S3_SUBMITTED = {"title": "三体", "author": {"name": "Liú"}}
S4_SIGNED = {"advance": {"amount": 0, "currency": "EUR"}}


class Traceback:
    """Equal to a formatted traceback ending with ``exc_type: message``."""

    def __init__(self, exc_type: str, message: str):
        self.end = f"{exc_type}: {message}\n"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, str)
            and other.startswith("Traceback (most recent call last):")
            and other.endswith(self.end)
        )

    def __hash__(self) -> int:
        return hash(self.end)

    def __repr__(self) -> str:
        return f"<a traceback ending {self.end!r}>"


def created(at: float, **metadata: Any) -> dict[str, Any]:
    """Metadata of an instance created ``at`` seconds after T0."""
    return {"created_at": T0 + at, **metadata}


def dispatched(uid: str, name: str, at: float, scheduled: float | None = None, **metadata: Any) -> dict[str, Any]:
    """... and dispatched (``scheduled``, default: at once) with its token."""
    scheduled_at = T0 + (at if scheduled is None else scheduled)
    return created(at, scheduled_at=scheduled_at, task_id=TOKEN[uid, name], **metadata)


def started(uid: str, name: str, at: float, start: float, **metadata: Any) -> dict[str, Any]:
    """... and started by the 0.1 worker ``start`` seconds after T0."""
    return dispatched(uid, name, at, started_at=T0 + start, hostname=OLD, attempts=1, celery_retries=0, **metadata)


def error(exc_type: str, message: str, at: float) -> dict[str, Any]:
    """The metadata 0.1 recorded for a failure ``at`` seconds after T0."""
    return {
        "failed_at": T0 + at,
        "exc_type": exc_type,
        "exc_module": "builtins",
        "exc_message": message,
        "traceback": Traceback(exc_type, message),
    }


@dataclass
class Stored:
    """What an instance holds, as compared here."""

    status: str
    kwargs: dict[str, Any]
    metadata: dict[str, Any]
    result: Any = None
    awaiting: list[str] = field(default_factory=list)
    unless_fired: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, instance: Instance) -> Stored:
        return cls(
            instance.status.value,
            instance.kwargs,
            instance.metadata,
            instance.result,
            list(instance.awaiting),
            list(instance.unless_fired),
        )


EXPECTED: dict[str, dict[str, Stored]] = {
    S1: {
        "t_payAdvance#0": Stored(
            "unstarted", {"t_registerManuscript": S1_REGISTERED}, created(40), awaiting=["contractSigned"]
        ),
        "t_registerManuscript#0": Stored(
            "finished",
            {"manuscriptSubmitted": S1_SUBMITTED},
            started(S1, "t_registerManuscript#0", 20, 30, finished_at=T0 + 40),
            S1_REGISTERED,
        ),
        "t_typesetChapter#0": Stored(
            "scheduled",
            {"chapterUploaded": S1_CHAPTER_1, "t_registerManuscript": S1_REGISTERED},
            dispatched(S1, "t_typesetChapter#0", 40, scheduled=50),
        ),
        "t_typesetChapter#1": Stored(
            "running",
            {"chapterUploaded": S1_CHAPTER_2, "t_registerManuscript": S1_REGISTERED},
            started(S1, "t_typesetChapter#1", 60, 70),
        ),
        "t_welcomeAuthor#0": Stored("abandoned", {}, created(10, abandoned_at=T0 + 10), unless_fired=["isAnonymous"]),
    },
    S2: {
        "t_registerManuscript#0": Stored(
            "failed",
            {"manuscriptSubmitted": S2_SUBMITTED},
            started(
                S2,
                "t_registerManuscript#0",
                1000,
                1010,
                **error("ConnectionError", "catalogue server refused: « connexion refusée »", 1020),
            ),
        ),
        "t_syncCatalog#0": Stored(
            "replayed",
            {"catalogSyncRequested": S2_SYNC},
            started(
                S2,
                "t_syncCatalog#0",
                1060,
                1070,
                **error("TimeoutError", "catalog timed out after 30 s", 1080),
                replayed_at=T0 + 1090,
                replayed_by="t_syncCatalog#1",
            ),
        ),
        "t_syncCatalog#1": Stored(
            "scheduled",
            {"catalogSyncRequested": S2_SYNC},
            dispatched(S2, "t_syncCatalog#1", 1090, parent="t_syncCatalog#0"),
        ),
        "t_welcomeAuthor#0": Stored(
            "skipped",
            {"manuscriptSubmitted": S2_SUBMITTED},
            started(
                S2,
                "t_welcomeAuthor#0",
                1000,
                1030,
                **error("ValueError", "no e-mail address for Ana", 1040),
                skipped_at=T0 + 1050,
            ),
        ),
    },
    S3: {
        "t_registerManuscript#0": Stored(
            "scheduled", {"manuscriptSubmitted": S3_SUBMITTED}, dispatched(S3, "t_registerManuscript#0", 2020)
        ),
        "t_sendGift#0": Stored("scheduled", {"t_welcomeAuthor": {}}, dispatched(S3, "t_sendGift#0", 2040)),
        "t_typesetChapter#0": Stored(
            "unstarted",
            {"chapterUploaded": {"chapter": 1, "title": "Prólogo"}},
            created(2000),
            awaiting=["t_registerManuscript"],
        ),
        "t_typesetChapter#1": Stored(
            "unstarted",
            {"chapterUploaded": {"chapter": 2, "title": "Epílogo"}},
            created(2010),
            awaiting=["t_registerManuscript"],
        ),
        "t_welcomeAuthor#0": Stored(
            "finished",
            {"manuscriptSubmitted": S3_SUBMITTED},
            started(S3, "t_welcomeAuthor#0", 2020, 2030, finished_at=T0 + 2040),
            "¡Bienvenida, Liú!",
        ),
    },
    S4: {
        "t_payAdvance#0": Stored(
            "unstarted", {"contractSigned": S4_SIGNED}, created(3010), awaiting=["t_registerManuscript"]
        ),
        "t_welcomeAuthor#0": Stored(
            "abandoned", {}, created(3000, abandoned_at=T0 + 3000), unless_fired=["isAnonymous"]
        ),
    },
}

#: Fired triggers: (how often, latest kwargs).
EXPECTED_TRIGGERS: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {
    S1: {
        "chapterUploaded": (2, S1_CHAPTER_2),
        "isAnonymous": (1, {}),
        "manuscriptSubmitted": (1, S1_SUBMITTED),
        "t_registerManuscript": (1, S1_REGISTERED),
    },
    S2: {"catalogSyncRequested": (1, S2_SYNC), "manuscriptSubmitted": (1, S2_SUBMITTED)},
    S3: {
        "chapterUploaded": (2, {"chapter": 2, "title": "Epílogo"}),
        "manuscriptSubmitted": (1, S3_SUBMITTED),
        "t_welcomeAuthor": (1, {}),
    },
    S4: {"contractSigned": (1, S4_SIGNED), "isAnonymous": (1, {})},
}

#: Task records: (next instance number, abandoned).
EXPECTED_TASKS: dict[str, dict[str, tuple[int, bool]]] = {
    S1: {
        "t_payAdvance": (1, False),
        "t_registerManuscript": (1, False),
        "t_typesetChapter": (2, False),
        "t_welcomeAuthor": (1, True),
    },
    S2: {"t_registerManuscript": (1, False), "t_syncCatalog": (2, False), "t_welcomeAuthor": (1, False)},
    S3: {
        "t_registerManuscript": (1, False),
        "t_sendGift": (1, False),
        "t_typesetChapter": (2, False),
        "t_welcomeAuthor": (1, False),
    },
    S4: {"t_payAdvance": (1, False), "t_welcomeAuthor": (1, True)},
}

# -- loading a dump into fresh storage ------------------------------------------

_SQLITE_TABLES = ("ct_sessions", "ct_triggers", "ct_tasks", "ct_instances", "ct_waiting")


def load_sqlite(path: Path) -> None:
    """The 0.1 SQLite file, re-created from its SQL dump."""
    with closing(sqlite3.connect(path)) as db:
        db.executescript((DUMPS / "sqlite.sql").read_text(encoding="utf-8"))


def add_sqlite_rows(target: Path, scratch: Path) -> None:
    """The 0.1 rows added to a database this code already uses (a rolling
    upgrade: old and new sessions side by side), each under its 0.1 column
    names; rows of the same sessions there before are replaced."""
    old = scratch / "old.sqlite3"
    load_sqlite(old)
    with closing(sqlite3.connect(target, timeout=30, isolation_level=None)) as db:
        db.execute("ATTACH DATABASE ? AS old", (str(old),))
        db.execute("BEGIN IMMEDIATE")
        for table in _SQLITE_TABLES:
            columns = ", ".join(row[1] for row in db.execute(f"PRAGMA old.table_info({table})"))
            db.execute(f"DELETE FROM main.{table} WHERE session IN (SELECT session FROM old.ct_sessions)")
            db.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM old.{table}")
        db.execute("COMMIT")
        db.execute("DETACH DATABASE old")


def load_redis(client: Any, dump: str, prefix: str) -> None:
    """The keys of a Redis dump, written under ``prefix`` instead of the
    prefix they were dumped under (on a cluster: each key to its slot's node)."""
    document = json.loads((DUMPS / dump).read_text(encoding="utf-8"))
    old = document["key_prefix"]
    for entry in document["keys"]:
        assert entry["key"].startswith(old + ":{"), entry["key"]
        key = prefix + entry["key"][len(old) :]
        value = entry["value"]
        if entry["type"] == "string":
            client.set(key, value)
        elif entry["type"] == "hash":
            client.hset(key, mapping=value)
        elif entry["type"] == "zset":
            client.zadd(key, {member: score for member, score in value})
        else:
            raise AssertionError(f"a {entry['type']} in the dump: {entry['key']}")
        if entry["ttl"] > 0:
            client.expire(key, entry["ttl"])


def _prefix(url: str) -> str:
    return parse_qs(urlsplit(url).query)["prefix"][0]


def storage_with_fixture(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A storage URL of ``kind`` with nothing stored but the 0.1 sessions."""
    import redis
    import redis.cluster

    url = storage_url_for(kind, request, tmp_path)
    if kind == "sqlite":
        load_sqlite(tmp_path / "triggers.sqlite3")
    elif kind == "redis":
        with redis.Redis.from_url(request.getfixturevalue("redis_server").url) as client:
            load_redis(client, "redis.json", _prefix(url))
    elif kind == "redis-cluster":
        node = request.getfixturevalue("redis_cluster").nodes[0]
        with redis.cluster.RedisCluster(host="127.0.0.1", port=node.port) as cluster:
            load_redis(cluster, "redis.json", _prefix(url))
    elif kind == "django-redis":
        from django.core.cache import caches

        key_prefix = caches["redis"].make_key(_prefix(url))  # the cache's KEY_PREFIX and VERSION
        with redis.Redis.from_url(request.getfixturevalue("redis_server").url) as client:
            load_redis(client, "django-cache-redis.json", key_prefix)
    elif kind.startswith("django-db"):
        from django.core.management import call_command

        alias = urlsplit(url).netloc
        call_command("loaddata", str(DUMPS / "django-db.json"), database=alias, verbosity=0)
    else:
        raise AssertionError(kind)
    return url


class Fires(Hooks):
    """Every committed fire, cascades included: (session, trigger)."""

    def __init__(self) -> None:
        self.seen: collections.Counter[tuple[str, str]] = collections.Counter()

    def fired(self, session: TriggerManager, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        self.seen[session.uid, trigger] += 1

    def of(self, uid: str) -> dict[str, int]:
        return {trigger: n for (session, trigger), n in sorted(self.seen.items()) if session == uid}


def upgraded_app(storage: str, runner: str = "eager") -> tuple[Celery, Fires]:
    app = make_app(storage=storage, runner=runner)
    upgrade_tasks.declare(app)
    fires = Fires()
    app.triggers.add_hooks(fires)
    return app, fires


def trigger_records(session: TriggerManager) -> dict[str, tuple[int, dict[str, Any]]]:
    _, snapshot = session.overview()
    return {name: (record.count, record.kwargs) for name, record in sorted(snapshot.triggers.items())}


# -- reading ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", SHARED_BACKENDS)
def test_every_instance_the_previous_release_stored_reads_back(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    app, _ = upgraded_app(storage_with_fixture(kind, request, tmp_path))
    assert sorted(app.triggers.storage.sessions()) == sorted(EXPECTED)
    for uid, expected in EXPECTED.items():
        session = app.triggers.session(uid)
        assert {name: Stored.of(i) for name, i in session.instances.items()} == expected, uid
        for name, stored in expected.items():  # the single-instance lookup reads the same
            assert Stored.of(session.instance(name)) == stored, (uid, name)
        assert trigger_records(session) == EXPECTED_TRIGGERS[uid], uid
        _, snapshot = session.overview()
        tasks = {name: (r.next_number, r.abandoned) for name, r in snapshot.tasks.items() if r.next_number}
        assert tasks == EXPECTED_TASKS[uid], uid
        # S1's own configuration was stored with it; the others have none.
        notify = session.get_configuration().get("t_notifyEditor")
        if uid == S1:
            assert notify is not None and notify.run == "upgrade_fixture.notify_editor"
            assert notify.after == ("t_payAdvance",) and notify.with_params == {"t_payAdvance": {"editor": "Zoë Ñúñez"}}
        else:
            assert notify is None, uid


# -- finishing --------------------------------------------------------------------

#: After finishing: (status, result) of every instance.
FINISHED: dict[str, dict[str, tuple[str, Any]]] = {
    S1: {
        "t_bindBook#0": ("finished", {"bound_after_chapter": 1}),
        "t_notifyEditor#0": ("finished", {"editor": "Zoë Ñúñez", "paid": 1500}),
        "t_payAdvance#0": ("finished", {"paid": 1500, "currency": "EUR", "for": S1_REGISTERED}),
        "t_registerManuscript#0": ("finished", S1_REGISTERED),
        "t_sendStatement#0": ("finished", {"statement_for": 1500}),
        "t_typesetChapter#0": ("finished", {"chapter": 1, "pages": 12}),
        "t_typesetChapter#1": ("finished", {"chapter": 2, "pages": 9}),
        "t_welcomeAuthor#0": ("abandoned", None),
    },
    S2: {
        "t_archive#0": ("finished", {"archived": [1, 2, 3]}),
        "t_payAdvance#0": ("unstarted", None),
        "t_registerManuscript#0": ("replayed", None),
        "t_registerManuscript#1": ("finished", {"title": "Second Thoughts", "author": "Ana"}),
        "t_syncCatalog#0": ("replayed", None),
        "t_syncCatalog#1": ("finished", {"synced": [1, 2, 3]}),
        "t_typesetChapter#0": ("unstarted", None),
        "t_welcomeAuthor#0": ("skipped", None),
    },
    S3: {
        "t_bindBook#0": ("finished", {"bound_after_chapter": 1}),
        "t_payAdvance#0": ("unstarted", None),
        "t_registerManuscript#0": ("finished", {"title": "三体", "author": "Liú"}),
        "t_sendGift#0": ("finished", {"gift": "bookmark", "after": {}}),
        "t_typesetChapter#0": (
            "finished",
            {"chapter": 1, "layout": {"font": "Garamond", "size": 11}, "of": {"title": "三体", "author": "Liú"}},
        ),
        "t_typesetChapter#1": (
            "finished",
            {"chapter": 2, "layout": {"font": "Garamond", "size": 11}, "of": {"title": "三体", "author": "Liú"}},
        ),
        "t_welcomeAuthor#0": ("finished", "¡Bienvenida, Liú!"),
    },
    S4: {
        "t_payAdvance#0": (
            "finished",
            {"paid": 0, "currency": "EUR", "for": {"title": "Idle No More", "author": "Jo"}},
        ),
        "t_registerManuscript#0": ("finished", {"title": "Idle No More", "author": "Jo"}),
        "t_sendStatement#0": ("finished", {"statement_for": 0}),
        "t_typesetChapter#0": ("unstarted", None),
        "t_welcomeAuthor#0": ("abandoned", None),
    },
}

#: What the finishing fired, cascades included: each finished instance's
#: task name once (t_typesetChapter: two instances), nothing twice.
FIRED_WHILE_FINISHING: dict[str, dict[str, int]] = {
    S1: {
        "contractSigned": 1,
        "t_bindBook": 1,
        "t_notifyEditor": 1,
        "t_payAdvance": 1,
        "t_sendStatement": 1,
        "t_typesetChapter": 2,
    },
    S2: {"t_archive": 1, "t_registerManuscript": 1, "t_syncCatalog": 1},
    S3: {"t_bindBook": 1, "t_registerManuscript": 1, "t_sendGift": 1, "t_typesetChapter": 2},
    S4: {"manuscriptSubmitted": 1, "t_payAdvance": 1, "t_registerManuscript": 1, "t_sendStatement": 1},
}


def start_as_a_worker(session: TriggerManager, name: str) -> str:
    """Step 1 of the worker protocol with the token 0.1 dispatched; the token."""
    token = TOKEN[session.uid, name]
    instance, config = session.start_instance(name, token, hostname=NEW, celery_retries=0)
    assert instance.status.value == "running" and instance.metadata["task_id"] == token
    assert config.name == instance.task
    return token


def finish_s1(app: Celery) -> None:
    s1 = app.triggers.session(S1)
    # The awaited trigger: t_payAdvance#0 runs and cascades, into the session's own t_notifyEditor too.
    s1.fire("contractSigned", {"advance": {"amount": 1500, "currency": "EUR"}})
    # The scheduled one: another message's token is refused, the token 0.1
    # sent starts it; finished, it cascades (t_bindBook#0 runs).
    with pytest.raises(StaleDispatch):
        s1.start_instance("t_typesetChapter#0", TOKEN[S1, "t_typesetChapter#1"], hostname=NEW)
    assert s1.instance("t_typesetChapter#0").status.value == "scheduled"
    token = start_as_a_worker(s1, "t_typesetChapter#0")
    s1.finish_instance("t_typesetChapter#0", token, {"chapter": 1, "pages": 12})
    # The running one, finished by the 0.1 worker's message (its token): cascades, once.
    running = TOKEN[S1, "t_typesetChapter#1"]
    s1.finish_instance("t_typesetChapter#1", running, {"chapter": 2, "pages": 9})
    assert s1.finish_instance("t_typesetChapter#1", running, {"chapter": 2, "pages": 9}) == []  # a redelivery


def finish_s2(app: Celery) -> None:
    s2 = app.triggers.session(S2)
    clone = s2.replay_failed_instance("t_registerManuscript#0")
    assert clone.name == "t_registerManuscript#1" and clone.metadata["parent"] == "t_registerManuscript#0"
    # The replay's clone 0.1 scheduled: sent again (a new token), it runs here.
    resent = s2.redispatch("t_syncCatalog#1")
    assert resent.metadata["task_id"] != TOKEN[S2, "t_syncCatalog#1"]


def finish_s3(app: Celery) -> None:
    s3 = app.triggers.session(S3)
    for name, result in (
        ("t_registerManuscript#0", {"title": "三体", "author": "Liú"}),  # both waiting chapters run
        ("t_sendGift#0", {"gift": "bookmark", "after": {}}),
    ):
        s3.finish_instance(name, start_as_a_worker(s3, name), result)


def finish_s4(app: Celery) -> None:
    app.triggers.fire(S4, "manuscriptSubmitted", {"title": "Idle No More", "author": {"name": "Jo"}})


@pytest.mark.parametrize("kind", SHARED_BACKENDS)
def test_every_session_the_previous_release_stored_finishes_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    app, fires = upgraded_app(storage_with_fixture(kind, request, tmp_path))
    before = {uid: trigger_records(app.triggers.session(uid)) for uid in EXPECTED}
    finish_s1(app)
    finish_s2(app)
    finish_s3(app)
    finish_s4(app)
    for uid, expected in FINISHED.items():
        session = app.triggers.session(uid)
        instances = session.instances
        assert {name: (i.status.value, i.result) for name, i in instances.items()} == expected, uid
        assert fires.of(uid) == FIRED_WHILE_FINISHING[uid], uid
        # Storage counted the same fires on top of what 0.1 counted: no cascade twice.
        counts = {name: count for name, (count, _) in trigger_records(session).items()}
        old = {name: count for name, (count, _) in before[uid].items()}
        assert counts == dict(collections.Counter(old) + collections.Counter(FIRED_WHILE_FINISHING[uid])), uid

    s1 = app.triggers.session(S1).instances
    assert s1["t_typesetChapter#0"].metadata["hostname"] == NEW
    assert s1["t_typesetChapter#0"].metadata["attempts"] == 1
    assert s1["t_typesetChapter#1"].metadata["hostname"] == OLD  # started by 0.1, finished here
    assert s1["t_typesetChapter#1"].metadata["started_at"] == T0 + 70
    s2 = app.triggers.session(S2).instances
    assert s2["t_registerManuscript#0"].metadata["replayed_by"] == "t_registerManuscript#1"
    assert s2["t_syncCatalog#1"].metadata["parent"] == "t_syncCatalog#0"
    assert s2["t_syncCatalog#1"].metadata["dispatches"] == 2
    assert s2["t_syncCatalog#0"].metadata["exc_type"] == "TimeoutError"  # the replayed failure keeps its record


# -- on a real worker -------------------------------------------------------------


@pytest.mark.worker
def test_scheduled_instances_of_the_previous_release_run_on_a_real_worker(worker_app: Celery, tmp_path: Path) -> None:
    """The SQLite dump added to the worker's storage; the instances 0.1 left
    scheduled are re-sent (new tokens) and run on this release's worker,
    with their cascades; the one a 0.1 worker still runs is left to it."""
    storage = worker_app.triggers.storage
    storage.sessions()  # the schema exists before rows are added
    add_sqlite_rows(Path(worker_app.conf.triggers_storage.removeprefix("sqlite:///")), tmp_path)
    assert set(EXPECTED) <= set(storage.sessions())

    scheduled = [
        (uid, name) for uid, rows in EXPECTED.items() for name, row in rows.items() if row.status == "scheduled"
    ]
    assert scheduled == [
        (S1, "t_typesetChapter#0"),
        (S2, "t_syncCatalog#1"),
        (S3, "t_registerManuscript#0"),
        (S3, "t_sendGift#0"),
    ]
    for uid, name in scheduled:
        worker_app.triggers.session(uid).redispatch(name)

    finished = {
        S1: {"t_typesetChapter#0", "t_bindBook#0"},
        S2: {"t_syncCatalog#1", "t_archive#0"},
        S3: {"t_registerManuscript#0", "t_typesetChapter#0", "t_typesetChapter#1", "t_bindBook#0", "t_sendGift#0"},
    }

    def done() -> dict[str, dict[str, Instance]] | None:
        instances = {uid: worker_app.triggers.session(uid).instances for uid in finished}
        resolved = all(
            name in instances[uid] and instances[uid][name].status.value in ("finished", "failed")
            for uid, names in finished.items()
            for name in names
        )
        return instances if resolved else None

    instances = wait_for(done, 60, "the re-sent instances and their cascades")
    for uid, names in finished.items():
        for name in names:
            instance = instances[uid][name]
            assert instance.status.value == "finished", (uid, name, instance.metadata)
            assert instance.metadata["hostname"] not in (OLD, NEW), "this release's worker ran it"
    s1 = instances[S1]
    assert s1["t_typesetChapter#0"].result == {
        "chapter": 1,
        "layout": {"font": "Garamond", "size": 11},
        "of": S1_REGISTERED,
    }
    assert s1["t_bindBook#0"].result == {"bound_after_chapter": 1}
    assert s1["t_typesetChapter#1"].status.value == "running"  # still the 0.1 worker's
    assert instances[S2]["t_archive#0"].result == {"archived": [1, 2, 3]}
    assert sorted(n for n in instances[S3] if n.startswith("t_bindBook")) == ["t_bindBook#0"]
    assert instances[S3]["t_payAdvance#0"].status.value == "unstarted"


# -- recovery of what a worker of the previous release left running -------------------------


def test_an_instance_running_under_a_worker_without_leases_is_judged_by_its_age(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The 0.1 worker left t_typesetChapter#1 running with no lease: the
    sweep judges it by the old rule (its age), never by a lease it never
    had, even while workers with leases heartbeat."""
    from celery_triggers.core.leases import Heartbeat
    from celery_triggers.worker.leases import write_heartbeat

    app, _ = upgraded_app(storage_with_fixture("sqlite", request, tmp_path))
    write_heartbeat(app.triggers.storage, Heartbeat("celery@new-worker", time.time(), 10, frozenset()))
    session = app.triggers.session(S1)
    assert "lease" not in session.instance("t_typesetChapter#1").metadata

    young = [a for a in app.triggers.recover([S1], older_than=10**9) if a.instance == "t_typesetChapter#1"]
    assert [(a.action, "no lease" in a.reason) for a in young] == [("skipped", True)]
    assert session.instance("t_typesetChapter#1").status.value == "running"

    old = [a for a in app.triggers.recover([S1], older_than=0) if a.instance == "t_typesetChapter#1"]
    assert [a.action for a in old] == ["failed"]
    lost = session.instance("t_typesetChapter#1")
    assert lost.status.value == "failed" and lost.metadata["exc_type"] == "WorkerLost"
