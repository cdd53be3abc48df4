"""Shared backends under real failure: concurrency, kills, outages, corruption."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from celery_triggers import CorruptSession, Status, StorageError, trigger_task
from celery_triggers.storage import resolve_storage
from celery_triggers.storage.kv import session_digest

from .conftest import SHARED_BACKENDS, make_app, storage_url_for, unique_prefix
from .django_project import configure_django
from .servers import RedisCluster, RedisServer

PROCESSES = 8
#: Fires per process: a short run that contention already breaks when a
#: backend loses updates (quick to run alone: ``-k 40-fires``), and the long
#: one the issue measured.
SHORT, LONG = 40, 250


def pages_app(storage: str, redis_url: str | None = None) -> Any:
    if storage.startswith("django"):
        configure_django(redis_url)
    app = make_app(storage)

    @trigger_task(after=["start"], and_every="page", name="t_page")
    @app.task(shared=False, name="tests.page")
    def page(trigger_kwargs: dict[str, Any]) -> None:
        return None

    return app


def _fire_pages(storage: str, redis_url: str | None, proc: int, fires: int, barrier: Any, errors: Any) -> None:
    try:
        app = pages_app(storage, redis_url)
        barrier.wait(timeout=120)
        for i in range(fires):
            app.triggers.fire("crowd", "page", {"proc": proc, "i": i})
    except Exception as exc:
        errors.put(f"process {proc}: {exc!r}")


@pytest.mark.slow
@pytest.mark.parametrize("fires", [SHORT, LONG], ids=lambda n: f"{n}-fires-each")
@pytest.mark.parametrize("kind", SHARED_BACKENDS)
def test_eight_processes_firing_an_and_every_trigger_lose_nothing(
    kind: str, fires: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    storage = storage_url_for(kind, request, tmp_path)
    redis_url = request.getfixturevalue("redis_server").url if kind.startswith("django") else None
    app = pages_app(storage, redis_url)
    app.triggers.fire("crowd", "start")
    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_fire_pages, args=(storage, redis_url, p, fires, barrier, errors)) for p in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    assert errors.empty(), errors.get()

    instances = app.triggers.session("crowd").instances
    assert len(instances) == PROCESSES * fires
    assert sorted(i.number for i in instances.values()) == list(range(PROCESSES * fires))
    seen = sorted((i.kwargs["page"]["proc"], i.kwargs["page"]["i"]) for i in instances.values())
    assert seen == [(p, i) for p in range(PROCESSES) for i in range(fires)], "every kwargs stored once"
    assert all(i.status is Status.FINISHED and i.kwargs["start"] == {} for i in instances.values())


def _hold_transaction(storage: str, redis_url: str | None, marker: str) -> None:
    if storage.startswith("django"):
        configure_django(redis_url)
    backend = resolve_storage(storage)

    def op(txn: Any) -> None:
        Path(marker).write_text("inside")
        time.sleep(600)

    backend.atomic("victim", op)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*SHARED_BACKENDS, "django-redis-add-lock"])
def test_a_process_killed_mid_transaction_does_not_wedge_the_session(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    storage = storage_url_for(kind.replace("-add-lock", ""), request, tmp_path)
    if kind.endswith("add-lock"):
        storage += "&lock=add"
    redis_url = request.getfixturevalue("redis_server").url if kind.startswith("django") else None
    app = pages_app(storage, redis_url)
    app.triggers.fire("victim", "start")
    marker = tmp_path / "inside"
    ctx = multiprocessing.get_context("spawn")
    holder = ctx.Process(target=_hold_transaction, args=(storage, redis_url, str(marker)))
    holder.start()
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert holder.is_alive() and time.monotonic() < deadline, "holder never entered its transaction"
        time.sleep(0.01)
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    started = time.monotonic()
    app.triggers.fire("victim", "page", {"after": "kill"})
    waited = time.monotonic() - started
    lock_timeout = 2.0  # storage_url_for sets lock_timeout=2 on Django caches
    assert waited < lock_timeout + 1.5, f"next fire took {waited:.1f}s"
    assert app.triggers.session("victim").instances["t_page#0"].status is Status.FINISHED


@pytest.mark.slow
def test_redis_outage_is_a_clear_error_and_the_session_survives(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        app = pages_app(f"{server.url}?prefix={unique_prefix()}")
        session = app.triggers.session("outage")
        session.fire("start")
        session.fire("page", {"n": 1})
        server.stop()
        with pytest.raises(StorageError, match=r"session 'outage': Redis storage redis://127\.0\.0\.1:\d+/0\S* failed"):
            session.fire("page", {"n": 2})
        with pytest.raises(StorageError, match="Redis storage"):
            session.instances  # noqa: B018 - the read must fail clearly too
        server.start()
        assert [i.kwargs["page"] for i in session.instances.values()] == [{"n": 1}]
        session.fire("page", {"n": 3})
        assert [i.kwargs["page"] for i in session.instances.values()] == [{"n": 1}, {"n": 3}]
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["redis", "django-locmem", "django-redis"])
def test_corrupt_state_names_the_session(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    storage = storage_url_for(kind, request, tmp_path)
    app = pages_app(storage)
    session = app.triggers.session("broken one")
    session.fire("start")
    backend = app.triggers.storage
    if kind == "django-redis":  # a Redis-backed cache holds sessions in the Redis layout
        backend = backend.redis
        assert backend is not None
    on_redis = kind != "django-locmem"
    key = (
        f"{backend.prefix}:"
        + ("{" + session_digest("broken one") + "}" if on_redis else session_digest("broken one"))
        + ":state"
    )
    if on_redis:
        backend.client.set(key, b"{not json")
    else:
        backend.cache.set(key, "{not json")
    with pytest.raises(CorruptSession, match="session 'broken one': stored state is not valid JSON"):
        session.fire("page")
    with pytest.raises(CorruptSession, match="broken one"):
        session.instances  # noqa: B018
    (backend.client.set(key, b"[1, 2]") if on_redis else backend.cache.set(key, "[1, 2]"))
    with pytest.raises(CorruptSession, match="not a celery-triggers session"):
        session.fire("page")
    # Only that session: the others, and the listing, keep working.
    app.triggers.session("healthy").fire("start")
    assert "healthy" in backend.sessions()
    # A state that is JSON but not a session's: the listing names it, and reports it as corrupt.
    bad = '{"configs":{},"tasks":{},"triggers":["page"],"uid":"broken one"}'
    (backend.client.set(key, bad) if on_redis else backend.cache.set(key, bad))
    assert {"broken one", "healthy"} <= set(backend.sessions())
    from celery.bin.base import CLIContext
    from click.testing import CliRunner

    from celery_triggers.cli import triggers

    listing = CliRunner().invoke(triggers, ["sessions", "--json"], obj=CLIContext(app=app, no_color=True, workdir=None))
    rows = {row["session"]: row for row in json.loads(listing.output)}
    assert listing.exit_code == 0 and rows["healthy"]["corrupt"] is None and rows["healthy"]["instances"] == 1
    assert "session 'broken one': stored state is not a celery-triggers session" in rows["broken one"]["corrupt"]
    table = CliRunner().invoke(triggers, ["sessions"], obj=CLIContext(app=app, no_color=True, workdir=None))
    assert table.exit_code == 0 and "corrupt: session 'broken one'" in table.output
    actions = app.triggers.recover()
    assert [(a.session, a.status, a.action) for a in actions if a.session == "broken one"] == [
        ("broken one", "corrupt", "skipped")
    ]


def test_redis_session_ttl_expires_every_key_of_a_session(redis_server: RedisServer) -> None:
    prefix = unique_prefix()
    app = pages_app(f"{redis_server.url}?prefix={prefix}")
    app.conf.triggers_session_ttl = 30
    app.triggers.reset_storage()
    app.triggers.fire("ttl", "start")
    app.triggers.fire("ttl", "page")
    client = app.triggers.storage.client
    keys = sorted(client.scan_iter(match=f"{prefix}:*"))
    assert len(keys) == 3, keys
    assert all(0 < client.ttl(k) <= 30 for k in keys)
    assert {k.decode().rsplit(":", 1)[1] for k in keys} == {"state", "inst", "version"}
    assert len({k.decode().split(":")[1] for k in keys}) == 1, "one hash tag per session (Redis Cluster slot)"


def test_django_cache_timeout_and_the_seed_form(django_caches: dict[str, Any]) -> None:
    from django.core.cache import caches

    from celery_triggers import TriggerManager
    from celery_triggers.contrib.django.cache import CacheStorageBackend

    app = pages_app("memory://")
    storage = CacheStorageBackend("seed-session", cache="redis", timeout=45)
    TriggerManager(storage, app=app).fire("start")
    TriggerManager(storage, app=app).fire("page", {"p": 1})
    assert TriggerManager(storage, app=app).instances["t_page#0"].status is Status.FINISHED
    cache = caches["redis"]
    raw = cache._cache.get_client(None)
    base = cache.make_key("ct") + ":{" + session_digest("seed-session") + "}"
    assert raw.get(base + ":state") is not None, "a Redis-backed cache holds the session in the Redis layout"
    assert [0 < raw.ttl(f"{base}:{kind}") <= 45 for kind in ("state", "inst", "version")] == [True] * 3
    assert "seed-session" in storage.backend.sessions()
    storage.delete()
    assert TriggerManager(storage, app=app).instances == {}
    assert "seed-session" not in storage.backend.sessions()


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    for module in [m for m in sys.modules if m.startswith("celery_triggers.storage.redis")]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ImportError, match=r"pip install 'celery-triggers\[redis\]'"):
        resolve_storage("redis://127.0.0.1:1/0")


def test_redis_session_ttl_never_expires_a_session_with_work_in_flight(redis_server: RedisServer) -> None:
    """A session whose instance is scheduled or running does not
    expire (a task running longer than the TTL would lose its cascade); its
    TTL counts again from the change that resolves the last one."""
    prefix = unique_prefix()
    app = make_app(  # its messages go to a queue no worker takes
        f"{redis_server.url}?prefix={prefix}", runner="celery", triggers_session_ttl=30, task_default_queue=prefix
    )
    app.triggers.configure({"t_x": {"after": ["go"], "run": "x"}, "t_y": {"after": ["t_x"], "run": "y"}})
    client = app.triggers.storage.client
    session = app.triggers.session("busy")

    def ttls() -> set[int]:  # the session's keys (the storage's own bookkeeping never expires)
        return {client.ttl(k) for k in app.triggers.storage.keys("busy") if client.exists(k)}

    session.fire("go")  # t_x#0 scheduled, its message waits in the memory broker
    assert ttls() == {-1}, "no expiry while t_x#0 is scheduled"
    token = session.instances["t_x#0"].metadata["task_id"]
    session.start_instance("t_x#0", token)
    assert ttls() == {-1}, "nor while it runs"
    session.finish_instance("t_x#0", token, {"ok": 1})
    assert ttls() == {-1}, "t_y#0 is scheduled now"
    session.update_instance_status("t_y#0", "finished")
    assert all(0 < t <= 30 for t in ttls()), "nothing in flight: the TTL counts from this change"


def test_redis_cluster_lists_sessions_from_every_node(redis_cluster: RedisCluster) -> None:
    import redis

    prefix = unique_prefix()
    app = make_app(f"{redis_cluster.url}?prefix={prefix}")
    app.triggers.configure({"t_one": {"after": ["go", "later"], "run": "tests.nothing"}})
    uids = [f"spread-{n}" for n in range(40)]
    for uid in uids:
        app.triggers.fire(uid, "go")
    per_node = []
    for node in redis_cluster.nodes:
        client = redis.Redis(port=node.port)
        keys = [k.decode() for k in client.scan_iter(match=f"{prefix}:*")]
        per_node.append({k.split("}")[0] for k in keys})
        client.close()
    assert sum(1 for sessions in per_node if sessions) == 3, "the sessions are spread over the three masters"
    assert all(not (a & b) for a in per_node for b in per_node if a is not b), "a session's keys share one node"
    assert app.triggers.storage.sessions() == sorted(uids)
    assert app.triggers.session("spread-7").instances["t_one#0"].status is Status.UNSTARTED


def test_redis_cluster_url_is_checked() -> None:
    from celery_triggers.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="database 0 only"):
        resolve_storage("redis+cluster://127.0.0.1:7000/3")


@pytest.mark.parametrize(
    ("backend_path", "why"),
    [
        ("django.core.cache.backends.filebased.FileBasedCache", "its add\\(\\) is not atomic across processes"),
        ("django.core.cache.backends.dummy.DummyCache", "it stores nothing"),
    ],
)
def test_django_caches_that_cannot_hold_sessions_are_refused(
    django_caches: dict[str, Any], tmp_path: Path, backend_path: str, why: str
) -> None:
    from django.conf import settings
    from django.core.cache import caches

    from celery_triggers.core.errors import ConfigurationError

    alias = f"refused-{backend_path.rsplit('.', 1)[1]}"
    settings.CACHES[alias] = {"BACKEND": backend_path, "LOCATION": str(tmp_path / "cache")}
    try:
        app = pages_app(f"django-cache://{alias}")
        with pytest.raises(
            ConfigurationError,
            match=rf"Django cache '{alias}' \(\w+\) cannot hold trigger sessions: {why}; use a Redis-backed cache",
        ):
            app.triggers.fire("s1", "start")
        assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir()), "nothing written"
    finally:
        del settings.CACHES[alias]
        caches._settings = caches.settings = settings.CACHES


@pytest.mark.parametrize("kind", ["django-locmem", "django-redis-add-lock"])
def test_a_lock_holder_that_stalled_past_its_lease_cannot_commit(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two increments of one record: the first holder stalls past its lease
    while the second commits; the first's commit is refused and re-runs on
    fresh data, so neither increment is lost."""
    import threading

    from celery_triggers.core.engine import Needs
    from celery_triggers.core.state import Changes, TriggerRecord

    storage = storage_url_for(kind.replace("-add-lock", ""), request, tmp_path).replace(
        "lock_timeout=2", "lock_timeout=1"
    )
    if kind.endswith("add-lock"):
        storage += "&lock=add"
    backend = resolve_storage(storage)
    stalled, overtaken = threading.Event(), threading.Event()
    attempts: list[str] = []

    def increment(who: str, stall: bool) -> None:
        def op(txn: Any) -> None:
            attempts.append(who)
            record = txn.load(Needs(triggers=frozenset({"x"}))).triggers.get("x") or TriggerRecord("x")
            if stall and attempts.count(who) == 1:
                stalled.set()
                # Past the lease: the lock expires, and the other writer gets it and commits.
                assert overtaken.wait(20), "the other writer never committed"
            txn.write(Changes(triggers={"x": TriggerRecord("x", {}, record.count + 1)}))

        backend.atomic("stall", op)

    slow = threading.Thread(target=increment, args=("slow", True))
    slow.start()
    assert stalled.wait(10)
    try:
        increment("fast", False)
    finally:
        overtaken.set()
    slow.join(20)
    assert not slow.is_alive()
    stored = backend.run("stall", lambda txn: txn.load(Needs(triggers=frozenset({"x"}))).triggers["x"])[0]
    assert stored.count == 2, "the stalled holder's stale write was refused"
    assert attempts.count("slow") == 2, "the stalled holder re-ran on fresh data"


def test_django_cache_api_path_expires_a_session_as_a_whole(django_caches: dict[str, Any]) -> None:
    """On a cache without Redis (here LocMem), no key of a session with work
    in flight expires; once idle, the other keys outlive the state, and a
    new session under the same UID never reads what the old one left."""
    from django.core.cache import caches

    prefix = unique_prefix()
    app = make_app(f"django-cache://default?prefix={prefix}&timeout=30", runner="celery", task_default_queue=prefix)
    app.triggers.configure(
        {"t_x": {"after": ["go"], "run": "x"}, "t_w": {"after": ["never"], "andEvery": "go", "run": "w"}}
    )
    cache = caches["default"]

    def expiries() -> dict[str, float | None]:
        session_keys = f":{prefix}:{session_digest('whole')}:"
        return {k: v for k, v in cache._expire_info.items() if session_keys in k}

    session = app.triggers.session("whole")
    session.fire("go")  # t_x#0 scheduled (its message waits in the memory broker); t_w#0 waits for "never"
    session.fire("go")  # t_w#1 waits for "never" too (another index bucket than t_w#0)
    assert len(expiries()) >= 4 and set(expiries().values()) == {None}, "nothing expires while t_x#0 is in flight"
    session.update_instance_status("t_x#0", "finished")
    now = time.time()
    state_key = cache.make_key(f"{prefix}:{session_digest('whole')}:state")
    others = {k: v for k, v in expiries().items() if k != state_key}
    assert 25 < float(expiries()[state_key] or 0) - now <= 30
    assert others and all(55 < (v or 0) - now <= 60 for v in others.values()), "every other key outlives the state"

    cache.delete(f"{prefix}:{session_digest('whole')}:state")  # the state expired; the rest is left behind
    session.fire("go")
    assert set(session.instances) == {"t_x#0", "t_w#0"} and session.instances["t_x#0"].status is Status.SCHEDULED
    assert session.instances["t_w#0"].kwargs == {"go": {}}
    scheduled = session.fire("never")
    assert [i.name for i in scheduled] == ["t_w#0"] and session.instances["t_w#0"].status is Status.SCHEDULED
    assert "t_w#1" not in session.instances, "no phantom from the old session"


def test_redis_fires_in_one_round_trip_when_the_process_knows_the_session(redis_server: RedisServer) -> None:
    """A fire into a new session, or into one this process committed to
    last, is one script call (the commit); a conflict costs one more (the
    failed commit returns the fresh read); a state changed behind the
    version's back is noticed; reads always read."""
    prefix = unique_prefix()
    url = f"{redis_server.url}?prefix={prefix}"
    app, other = (make_app(url, runner="celery", task_default_queue=prefix) for _ in range(2))
    for a in (app, other):
        a.triggers.configure({"t_x": {"after": ["go", "later"], "run": "x"}})
    backend = app.triggers.storage
    app.triggers.epoch_of(backend)  # read once per process, with the first message sent (counted apart)
    calls: list[str] = []
    names = {backend.scripts.read.sha: "_read", backend.scripts.commit.sha: "_commit"}
    real = backend.call

    def counted(call: Any) -> Any:
        calls.append(names[call[0]])
        return real(call)

    backend.call = counted

    app.triggers.fire("s", "nobody-listens")
    assert calls == ["_commit"], "a new session: one round trip"
    calls.clear()
    app.triggers.fire("s", "go")
    app.triggers.fire("s", "nobody-listens")
    assert calls == ["_commit", "_commit"], "this process committed there last"
    calls.clear()

    other.triggers.fire("s", "nobody-listens")  # another process changes the session
    app.triggers.fire("s", "later")
    assert calls == ["_commit", "_commit"], "a conflict: the failed commit brought the fresh read"
    assert app.triggers.session("s").instances["t_x#0"].kwargs == {"go": {}, "later": {}}
    calls.clear()

    state_key = backend.keys("s")[0]
    text = backend.client.get(state_key)
    backend.client.set(state_key, text.replace(b'"count":', b'"count": '))  # same JSON, another text
    app.triggers.fire("s", "nobody-listens")
    assert calls == ["_commit", "_commit"], "a state changed behind the version's back is noticed"
    calls.clear()
    assert app.triggers.session("s").latest_kwargs("go") == {}
    assert calls == ["_read"], "a read-only operation reads"


@pytest.mark.parametrize("packer", ["hiredis", "redis-py"])
def test_redis_loads_its_scripts_again_after_the_server_lost_them(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, packer: str
) -> None:
    """Given a server that lost its scripts (SCRIPT FLUSH, or a restart),
    a fire, a worker's start and its finish load them again and go on,
    whether the calls are packed by hiredis or sent by redis-py."""
    import redis

    from celery_triggers.storage.redis import scripts

    if packer == "redis-py":
        monkeypatch.setattr(scripts, "packer", None)

    app = make_app(f"{redis_server.url}?prefix={unique_prefix()}", runner="celery", task_default_queue="unconsumed")
    app.triggers.configure({"t_x": {"after": ["go"], "run": "x"}})
    session = app.triggers.session("s")
    session.fire("warm-up")
    flush = redis.Redis.from_url(redis_server.url).script_flush
    flush()
    [scheduled] = session.fire("go", {"n": 1})
    token = scheduled.metadata["task_id"]
    flush()
    instance, _ = session.start_instance("t_x#0", token)
    assert instance.status is Status.RUNNING and instance.kwargs == {"go": {"n": 1}}
    flush()
    session.finish_instance("t_x#0", token, "done")
    assert app.triggers.session("s").instance("t_x#0").status is Status.FINISHED


def _raised(call: Any) -> StorageError:
    with pytest.raises(StorageError) as info:
        call()
    return info.value


@pytest.mark.slow
def test_redis_says_unavailable_only_when_it_cannot_be_reached(tmp_path: Path) -> None:
    """Given a Redis storage down, then up but refusing the user's scripts
    (an ACL), then reached with a wrong password: only the first is
    StorageUnavailable (what a worker retries); the others are plain
    StorageErrors naming the real cause."""
    import redis

    from celery_triggers import StorageUnavailable

    server = RedisServer(tmp_path, password="s3cret-pw")
    server.start()
    try:
        storage = resolve_storage(server.url)
        storage.ping()
        server.stop()
        down = _raised(lambda: storage.instances("s"))
        assert isinstance(down, StorageUnavailable) and "Connection refused" in str(down)
        server.start()
        admin = redis.Redis(port=server.port, password="s3cret-pw")
        admin.execute_command("ACL", "SETUSER", "default", "-@scripting")  # type: ignore[no-untyped-call]  # untyped in redis-py
        admin.close()
        refused = _raised(lambda: storage.instances("s"))
        assert not isinstance(refused, StorageUnavailable) and "no permissions" in str(refused)
        wrong = resolve_storage(server.url.replace("s3cret-pw", "wrong-pw"))
        denied = _raised(lambda: wrong.instances("s"))
        assert not isinstance(denied, StorageUnavailable) and "invalid username-password pair" in str(denied)
    finally:
        server.stop()


def test_sqlite_says_unavailable_only_for_a_lock_it_could_not_get_or_a_file_it_could_not_open(tmp_path: Path) -> None:
    import sqlite3

    from celery_triggers import StorageUnavailable
    from celery_triggers.storage.sqlite import SQLiteStorage
    from celery_triggers.storage.txn import SessionTxn

    path = tmp_path / "s.sqlite3"
    storage = SQLiteStorage(f"sqlite:///{path}", timeout=0.1)
    storage.instances("s")  # the schema
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    locked = _raised(lambda: storage.atomic("s", lambda txn: None))
    holder.execute("ROLLBACK")
    holder.close()
    assert isinstance(locked, StorageUnavailable) and "locked" in str(locked)

    def no_such_table(txn: SessionTxn) -> None:
        txn.conn.execute("SELECT * FROM ct_missing")  # type: ignore[attr-defined]  # the SQLite transaction's connection

    missing = _raised(lambda: storage.atomic("s", no_such_table))
    assert not isinstance(missing, StorageUnavailable) and "no such table" in str(missing)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database at all" * 100)
    corrupt = _raised(lambda: SQLiteStorage(f"sqlite:///{garbage}").instances("s"))
    assert not isinstance(corrupt, StorageUnavailable) and "not a database" in str(corrupt)


def test_django_cache_says_unavailable_for_a_lock_it_waited_for_too_long(django_caches: dict[str, Any]) -> None:
    from celery_triggers import StorageUnavailable
    from celery_triggers.contrib.django.cache import DjangoCacheStorage

    storage = DjangoCacheStorage(f"django-cache://default?prefix={unique_prefix()}&lock_timeout=0.05&lock=add")
    storage.cache.add(storage.layout.key("s", "lock"), "another process", timeout=30)
    held = _raised(lambda: storage.atomic("s", lambda txn: None))
    assert isinstance(held, StorageUnavailable) and "lock held by another process" in str(held)
