"""fire_many, afire and afire_many."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from celery_triggers import DispatchError, InvalidKwargs, InvalidName, Status, TriggerManager
from celery_triggers.producer.runners import Dispatch, TaskRunner
from celery_triggers.storage.redis import RedisStorage
from celery_triggers.storage.redis import batch as redis_batch
from celery_triggers.storage.redis import scripts as redis_scripts

from .conftest import make_app, unique_prefix, wait_for
from .servers import RedisCluster, RedisServer


def _app(storage: str = "memory://"):  # type: ignore[no-untyped-def]
    app = make_app(storage)
    app.triggers.configure({"t_page": {"after": ["start"], "andEvery": "page", "run": "bulk.page"}})

    @app.task(shared=False, name="bulk.page")
    def page() -> None:
        return None

    return app


def test_fire_many_reports_each_event_and_a_bad_one_stops_nothing() -> None:
    app = _app()
    results = app.triggers.fire_many(
        [
            ("s1", "start"),
            ("s1", "page", {"n": 1}),
            ("s1", "   "),  # a bad trigger name
            "not an event",
            ("s2", "page", {"bad": {1, 2}}),  # not JSON
            ("s1", "page", {"n": 2}),
        ]
    )
    assert [r.ok for r in results] == [True, True, False, False, False, True]
    assert [i.name for i in results[1].scheduled] == ["t_page#0"]
    assert isinstance(results[2].error, InvalidName) and results[2].session == "s1"
    assert isinstance(results[3].error, InvalidKwargs) and "event #3 must be (session, trigger)" in str(
        results[3].error
    )
    assert isinstance(results[4].error, InvalidKwargs)
    session = app.triggers.session("s1")
    assert [i.status for i in session.instances.values()] == [Status.FINISHED, Status.FINISHED]
    assert "s2" not in app.triggers.storage.sessions(), "the refused event changed nothing"


def test_afire_from_many_coroutines_on_a_real_redis_loses_nothing(redis_server: RedisServer) -> None:
    app = _app(f"{redis_server.url}?prefix={unique_prefix()}")
    app.triggers.fire("crowd", "start")

    async def main() -> list[object]:
        return list(await asyncio.gather(*(app.triggers.afire("crowd", "page", {"n": n}) for n in range(50))))

    fired = asyncio.run(main())
    assert all(len(f) == 1 for f in fired)  # type: ignore[arg-type]
    instances = app.triggers.session("crowd").instances
    assert sorted(i.kwargs["page"]["n"] for i in instances.values()) == list(range(50))
    results = asyncio.run(app.triggers.afire_many([("crowd", "page", {"n": 50}), ("crowd", "")]))
    assert [r.ok for r in results] == [True, False]
    with pytest.raises(InvalidName):
        asyncio.run(app.triggers.afire("crowd", ""))


class Hold(TaskRunner):
    """Sends nothing; records what was dispatched, in order (as a broker
    would receive it), and refuses instances named in ``refuse``."""

    name = "hold"
    sent: ClassVar[list[str]] = []
    refuse: ClassVar[set[str]] = set()

    def dispatch(self, items: list[Dispatch]) -> None:
        Hold.sent.extend(f"{i.session_uid}/{i.instance.name}" for i in items if i.instance.name not in Hold.refuse)
        refused = [i.instance.name for i in items if i.instance.name in Hold.refuse]
        if refused:
            raise DispatchError(f"refused {refused}", refused)


CONFIGS = {
    "t_page": {"after": ["start"], "andEvery": "page", "run": "bulk.page"},
    "t_pair": {"after": ["left", "right"], "unless": ["cancel"], "run": "bulk.page"},
    "t_any": {"after": ["left"], "run": "bulk.page"},
}
EVENTS = [
    ("a", "page", {"n": 0}),
    ("b", "left", {"x": 1}),
    ("a", "start"),
    ("b", "cancel"),
    ("a", "page", {"n": 1}),
    ("c", "right"),
    ("b", "right", {"y": 2}),
    ("a", "page", {"n": 2}),
    ("c", "left", {"x": 3}),
    ("c", "cancel"),
]


def _hold_app(storage: str) -> Any:
    app = make_app(storage, runner=f"{__name__}:Hold")
    app.triggers.configure(CONFIGS)
    Hold.sent.clear()
    Hold.refuse = set()
    return app


def _count_transactions(backend: Any, monkeypatch: pytest.MonkeyPatch, uids: Any = ()) -> Any:
    """From now on, count the transactions ``backend`` runs: alone
    (``run``) or, on Redis, as a commit in a pipeline of several
    sessions' transactions (the pipelines are counted in ``pipelines``).
    Returns a function giving the session UID of each so far (``uids``:
    the sessions to name a Redis commit after, by its keys)."""
    alone: list[str] = []
    real = backend.run

    def counted(uid: str, *args: Any, **kwargs: Any) -> Any:
        alone.append(uid)
        return real(uid, *args, **kwargs)

    monkeypatch.setattr(backend, "run", counted)
    layout = backend if isinstance(backend, RedisStorage) else getattr(backend, "redis", None)  # a Redis-backed cache
    commits = _count_commits(layout, monkeypatch) if layout is not None else []
    names = {layout.keys(uid)[0]: uid for uid in uids} if layout is not None else {}

    def transactions() -> list[str]:
        return [*alone, *(names.get(keys[0], keys[0]) for keys, _ in commits)]

    return transactions


#: Pipelines the Redis batch sent, counted by ``_count_commits``.
pipelines: list[int] = []


def _count_commits(backend: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], Any]]:
    """(keys, reply) of every commit script the Redis batch sends, sync or
    async; ``pipelines`` gets one entry per pipeline."""
    commits: list[tuple[list[str], Any]] = []
    pipelines.clear()
    real, areal = redis_batch.pipelined, redis_batch.apipelined

    def note(calls: list[Any], replies: list[Any]) -> list[Any]:
        pipelines.append(len(calls))
        commits.extend(
            (keys, r) for (sha, keys, _), r in zip(calls, replies, strict=True) if sha == backend.scripts.commit.sha
        )
        return replies

    async def acounted(client: Any, calls: list[Any]) -> list[Any]:
        return note(calls, await areal(client, calls))

    monkeypatch.setattr(redis_batch, "pipelined", lambda client, calls: note(calls, real(client, calls)))
    monkeypatch.setattr(redis_batch, "apipelined", acounted)
    return commits


def _state(app: Any, uid: str) -> dict[str, tuple[str, Any]]:
    return {n: (i.status.value, i.kwargs) for n, i in app.triggers.session(uid).instances.items()}


def test_fire_many_gives_a_loops_result_with_one_transaction_per_session(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _hold_app(storage_url)
    per_event = [
        [i.name for i in app.triggers.fire(f"loop-{uid}", trigger, *kwargs)] for uid, trigger, *kwargs in EVENTS
    ]
    looped = list(Hold.sent)
    Hold.sent.clear()
    backend = app.triggers.storage
    transactions = _count_transactions(backend, monkeypatch, ["bulk-a", "bulk-b", "bulk-c"])
    results = app.triggers.fire_many([(f"bulk-{uid}", trigger, *kwargs) for uid, trigger, *kwargs in EVENTS])
    assert sorted(transactions()) == ["bulk-a", "bulk-b", "bulk-c"], "one transaction per session"
    if isinstance(backend, RedisStorage):
        assert pipelines == [3], "new sessions: their three commits in one round trip"
    monkeypatch.undo()
    for uid in "abc":
        assert _state(app, f"bulk-{uid}") == _state(app, f"loop-{uid}"), uid
    assert sorted(Hold.sent) == sorted(s.replace("loop-", "bulk-") for s in looped)
    assert [[i.name for i in r.scheduled] for r in results] == per_event
    assert sum(map(len, per_event)) >= 5 and all(r.ok for r in results)

    Hold.sent.clear()  # the same from asyncio code
    events = [(f"async-{uid}", trigger, *kwargs) for uid, trigger, *kwargs in EVENTS]
    results = asyncio.run(app.triggers.afire_many(events))
    for uid in "abc":
        assert _state(app, f"async-{uid}") == _state(app, f"loop-{uid}"), uid
    assert sorted(Hold.sent) == sorted(s.replace("loop-", "async-") for s in looped)
    assert [[i.name for i in r.scheduled] for r in results] == per_event


def test_fire_many_reports_a_refused_message_on_its_event_only() -> None:
    app = _hold_app("memory://")
    Hold.refuse = {"t_page#1"}
    results = app.triggers.fire_many([("s", "start"), ("s", "page"), ("s", "page"), ("s", "page"), ("s", "   ")])
    assert [r.ok for r in results] == [True, True, False, True, False]
    assert isinstance(results[2].error, DispatchError) and results[2].error.instances == ["t_page#1"]
    assert isinstance(results[4].error, InvalidName)
    assert Hold.sent == ["s/t_page#0", "s/t_page#2"]
    assert app.triggers.session("s").instance("t_page#1").status is Status.SCHEDULED, "committed, to redispatch"


def test_fire_many_with_stale_knowledge_of_a_session_another_process_changed(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two storage objects stand for two processes: each remembers what it
    last committed. The first one's knowledge goes stale; its fire_many
    commit is refused, re-runs on the fresh data the refusal returned, and
    loses nothing."""
    url = f"{redis_server.url}?prefix={unique_prefix()}"
    mine, other = _hold_app(url), _hold_app(url)
    mine.triggers.fire("shared", "start")
    assert [i.name for i in mine.triggers.fire("shared", "page", {"by": "mine"})] == ["t_page#0"]
    other.triggers.fire("shared", "page", {"by": "other"})  # mine's knowledge is now stale
    backend = mine.triggers.storage
    commits = _count_commits(backend, monkeypatch)
    results = mine.triggers.fire_many([("shared", "page", {"by": "bulk", "n": n}) for n in range(3)])
    assert [int(reply[0]) for _, reply in commits] == [0, 1], "refused with the fresh data, then committed once"
    assert pipelines == [1, 1], "two round trips: the refused commit, the re-run's"
    assert [[i.name for i in r.scheduled] for r in results] == [["t_page#2"], ["t_page#3"], ["t_page#4"]]
    instances = mine.triggers.session("shared").instances
    assert [i.kwargs["page"].get("by") for i in instances.values()] == ["mine", "other", "bulk", "bulk", "bulk"]


def test_concurrent_afire_calls_are_fired_together_and_each_gets_its_own_outcome(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _hold_app(f"{redis_server.url}?prefix={unique_prefix()}")
    for s in range(10):
        app.triggers.fire(f"s{s}", "start")
    backend = app.triggers.storage
    transactions = _count_transactions(backend, monkeypatch)

    async def main() -> list[Any]:
        calls = [app.triggers.afire(f"s{n % 10}", "page", {"n": n}) for n in range(100)]
        calls.append(app.triggers.afire("s0", "   "))  # refused: only this caller sees the error
        return list(await asyncio.gather(*calls, return_exceptions=True))

    outcomes = asyncio.run(main())
    assert isinstance(outcomes[-1], InvalidName)
    assert all(len(o) == 1 for o in outcomes[:-1]), outcomes[:3]
    count = len(transactions())
    assert count <= 20, f"{count} transactions for 100 events over 10 sessions"
    monkeypatch.undo()
    for s in range(10):
        pages = [i.kwargs["page"]["n"] for i in app.triggers.session(f"s{s}").instances.values()]
        assert sorted(pages) == list(range(s, 100, 10))


def test_fire_many_pipelines_sessions_another_process_wrote_and_reads_only_on_a_refusal(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that knows nothing of 20 existing sessions: its guess that
    they are new is refused, every refusal returns the fresh records, and
    the re-runs commit: two round trips for the 20 sessions, not 20 or 40."""
    url = f"{redis_server.url}?prefix={unique_prefix()}"
    other = _hold_app(url)
    other.triggers.fire_many([(f"known-{n}", "start") for n in range(20)])
    mine = _hold_app(url)
    commits = _count_commits(mine.triggers.storage, monkeypatch)
    results = mine.triggers.fire_many([(f"known-{n}", "page", {"n": n}) for n in range(20)] + [("known-0", "")])
    assert [r.ok for r in results] == [True] * 20 + [False]
    assert isinstance(results[-1].error, InvalidName)
    assert pipelines == [20, 20], "every guess refused in one round trip, every re-run committed in the next"
    assert [int(reply[0]) for _, reply in commits] == [0] * 20 + [1] * 20
    monkeypatch.undo()
    for n in range(20):
        assert [i.name for i in results[n].scheduled] == ["t_page#0"]
        assert mine.triggers.session(f"known-{n}").instance("t_page#0").kwargs["page"] == {"n": n}


def test_afire_on_redis_is_native_async_and_settles_in_a_thread_only_to_dispatch(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """afire goes through redis.asyncio (the async pipeline), not a thread,
    when the fire dispatches nothing; sending messages (blocking kombu I/O)
    happens in a worker thread."""
    app = _hold_app(f"{redis_server.url}?prefix={unique_prefix()}")
    commits = _count_commits(app.triggers.storage, monkeypatch)
    hops: list[str] = []
    real_to_thread = asyncio.to_thread

    async def to_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await real_to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)

    async def main() -> tuple[Any, Any]:
        quiet = await asyncio.gather(*(app.triggers.afire(f"n{n}", "page", {"n": n}) for n in range(30)))
        assert hops == [], "nothing to dispatch: no thread"
        sending = await asyncio.gather(*(app.triggers.afire(f"n{n}", "start") for n in range(30)))
        return quiet, sending

    import redis

    watcher = redis.Redis.from_url(redis_server.url)
    before = {c["id"] for c in watcher.client_list()}
    quiet, sending = asyncio.run(main())
    assert {c["id"] for c in watcher.client_list()} - before == set(), "the loop's connections closed with it"
    watcher.close()
    assert all(list(q) == [] for q in quiet)
    assert all([i.name for i in s] == ["t_page#0"] for s in sending)
    assert hops and set(hops) == {"settle"}, hops
    replies = [reply for _, reply in commits if not isinstance(reply, Exception)]  # a fresh server: NOSCRIPT first
    assert len(replies) == 60 and all(int(reply[0]) for reply in replies)
    assert len(pipelines) <= 6, f"{len(pipelines)} round trips for 60 concurrent fires"
    assert sorted(Hold.sent) == sorted(f"n{n}/t_page#0" for n in range(30))


def test_afire_with_stale_knowledge_re_runs_on_the_fresh_records(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{redis_server.url}?prefix={unique_prefix()}"
    mine, other = _hold_app(url), _hold_app(url)
    mine.triggers.fire("shared", "start")
    mine.triggers.fire("shared", "page", {"by": "mine"})
    other.triggers.fire("shared", "page", {"by": "other"})  # mine's knowledge is now stale
    commits = _count_commits(mine.triggers.storage, monkeypatch)
    fired = asyncio.run(mine.triggers.afire("shared", "page", {"by": "async"}))
    assert [i.name for i in fired] == ["t_page#2"]
    assert [int(reply[0]) for _, reply in commits] == [0, 1]
    instances = mine.triggers.session("shared").instances
    assert [i.kwargs["page"]["by"] for i in instances.values()] == ["mine", "other", "async"]


@pytest.mark.parametrize("mode", ["fire_many", "afire_many"])
def test_bulk_fire_with_redis_unreachable_reports_every_event_and_changes_nothing(mode: str) -> None:
    from celery_triggers import StorageUnavailable

    from .servers import free_port

    app = _hold_app(f"redis://127.0.0.1:{free_port()}/0")
    events = [(f"s{n}", "start") for n in range(3)] + [("s0", "")]
    if mode == "fire_many":
        results = app.triggers.fire_many(events)
    else:
        results = asyncio.run(app.triggers.afire_many(events))
    assert [type(r.error) for r in results] == [StorageUnavailable] * 3 + [InvalidName]
    assert all("Redis storage" in str(r.error) for r in results[:3])
    assert Hold.sent == []


@pytest.mark.parametrize("mode", ["fire_many", "afire_many"])
def test_fire_many_after_the_server_lost_its_scripts(redis_server: RedisServer, mode: str) -> None:
    """SCRIPT FLUSH (or a restart): the pipeline's NOSCRIPT replies load the
    scripts again and the round is sent once more."""
    import redis

    app = _hold_app(f"{redis_server.url}?prefix={unique_prefix()}")
    app.triggers.fire("before", "start")
    redis.Redis.from_url(redis_server.url).script_flush()
    events = [("before", "page"), ("after", "start")]
    results = app.triggers.fire_many(events) if mode == "fire_many" else asyncio.run(app.triggers.afire_many(events))
    assert all(r.ok for r in results), results
    assert [i.name for i in results[0].scheduled] == ["t_page#0"]


@pytest.mark.parametrize("packer", ["hiredis", "redis-py"])
def test_a_round_gets_each_reply_in_its_calls_place_and_leaves_the_connection_clean(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, packer: str
) -> None:
    """A round packed by hiredis (one call per command) or by redis-py's
    pipeline (without hiredis): every reply in order over several chunks,
    an error reply in its place, and the pooled connection fit for the
    next round."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    echo = client.script_load("return {KEYS[1], ARGV[1]}")
    if packer == "redis-py":
        monkeypatch.setattr(redis_scripts, "packer", None)
    calls: list[Any] = []
    for n in range(redis_batch.CHUNK + 7):
        calls.append((echo, [f"k{n}"], [n]) if n % 3 else ("0" * 40, [f"k{n}"], ["lost"]))
    replies = redis_batch.send(client, calls)
    assert len(replies) == len(calls)
    for n, reply in enumerate(replies):
        if n % 3:
            assert reply == [f"k{n}".encode(), str(n).encode()]
        else:
            assert isinstance(reply, redis.exceptions.NoScriptError), reply
    assert redis_batch.send(client, calls[1:2]) == [[b"k1", b"1"]]
    assert client.ping()


#: A script that keeps the server busy for 0.3 s.
_BUSY = """
local t = redis.call('TIME')
local began = t[1] * 1000000 + t[2]
repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - began > 300000
return 1
"""


@pytest.mark.parametrize("packer", ["hiredis", "redis-py"])
def test_a_round_whose_reply_times_out_fails_and_its_late_replies_are_never_read(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, packer: str
) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.1)
    echo, busy = client.script_load("return ARGV[1]"), client.script_load(_BUSY)
    if packer == "redis-py":
        monkeypatch.setattr(redis_scripts, "packer", None)
    with pytest.raises(redis.exceptions.TimeoutError):
        redis_batch.send(client, [(busy, ["k"], []), (echo, ["k"], ["late"])])

    def answers() -> list[Any] | None:
        try:
            return redis_batch.send(client, [(echo, ["k"], ["now"])])
        except redis.exceptions.TimeoutError:
            return None  # still busy

    assert wait_for(answers, what="the server back") == [b"now"]


BULK_PROCESSES, BULK_CALLS, BULK_SESSIONS = 4, 30, 3


def _bulk_fire(url: str, proc: int, barrier: Any, out: Any) -> None:
    """One process: BULK_CALLS bulk fires of 10 events over the shared
    sessions, and one bad event each; even processes use afire_many (the
    async pipeline). Reports the commits Redis refused."""
    try:
        app = _hold_app(url)
        backend = app.triggers.storage
        refused = [0]
        real, areal = redis_batch.pipelined, redis_batch.apipelined

        def note(calls: list[Any], replies: list[Any]) -> list[Any]:
            commits = [r for (sha, _, _), r in zip(calls, replies, strict=True) if sha == backend.scripts.commit.sha]
            refused[0] += sum(1 for r in commits if not isinstance(r, Exception) and not int(r[0]))
            return replies

        async def acounted(client: Any, calls: list[Any]) -> list[Any]:
            return note(calls, await areal(client, calls))

        redis_batch.pipelined = lambda client, calls: note(calls, real(client, calls))
        redis_batch.apipelined = acounted
        barrier.wait(timeout=120)
        for call in range(BULK_CALLS):
            events: list[Any] = [
                (f"crowd-{j % BULK_SESSIONS}", "page", {"proc": proc, "call": call, "j": j}) for j in range(10)
            ]
            events.append((f"crowd-{call % BULK_SESSIONS}", "", {}))
            if proc % 2:
                results = app.triggers.fire_many(events)
            else:
                results = asyncio.run(app.triggers.afire_many(events))
            if [r.ok for r in results] != [True] * 10 + [False]:
                raise AssertionError(f"call {call}: {results}")
        out.put(("refused", refused[0]))
    except BaseException as exc:
        out.put(("error", f"process {proc}: {exc!r}"))


@pytest.mark.slow
def test_processes_bulk_firing_into_shared_sessions_lose_nothing(redis_server: RedisServer) -> None:
    """The pipelined rounds under contention: four processes (two sync, two
    asyncio) fire_many into three shared sessions at once. Every event is
    stored once, numbers are dense, and commits were refused along the way
    (so the re-run from a refusal's fresh records is what kept them exact)."""
    import multiprocessing

    url = f"{redis_server.url}?prefix={unique_prefix()}"
    app = _hold_app(url)
    app.triggers.fire_many([(f"crowd-{s}", "start") for s in range(BULK_SESSIONS)])
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(BULK_PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_bulk_fire, args=(url, p, barrier, out)) for p in range(BULK_PROCESSES)]
    for p in procs:
        p.start()
    reports = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [kind for kind, _ in reports] == ["refused"] * BULK_PROCESSES, reports
    assert sum(count for _, count in reports) > 0, f"no contention: the test proved nothing ({reports})"
    expected = {s: [] for s in range(BULK_SESSIONS)}  # type: dict[int, list[tuple[int, int, int]]]
    for proc in range(BULK_PROCESSES):
        for call in range(BULK_CALLS):
            for j in range(10):
                expected[j % BULK_SESSIONS].append((proc, call, j))
    for s in range(BULK_SESSIONS):
        instances = app.triggers.session(f"crowd-{s}").instances
        assert sorted(i.number for i in instances.values()) == list(range(len(expected[s])))
        seen = sorted(
            (i.kwargs["page"]["proc"], i.kwargs["page"]["call"], i.kwargs["page"]["j"]) for i in instances.values()
        )
        assert seen == sorted(expected[s]), f"crowd-{s}: every event stored once"


@pytest.mark.parametrize("mode", ["fire_many", "afire_many"])
def test_bulk_fire_over_a_corrupt_session_fails_its_events_only(redis_server: RedisServer, mode: str) -> None:
    """A session whose stored state is not JSON: its events get
    CorruptSession naming it, the other sessions of the same pipeline fire."""
    import redis

    from celery_triggers import CorruptSession

    url = f"{redis_server.url}?prefix={unique_prefix()}"
    writer = _hold_app(url)
    writer.triggers.fire_many([("good", "start"), ("bad", "start")])
    state_key = writer.triggers.storage.keys("bad")[0]
    redis.Redis.from_url(redis_server.url).set(state_key, b"{not json")
    app = _hold_app(url)  # knows neither session: guesses, is refused, reads the corrupt state
    events = [("good", "page"), ("bad", "page"), ("new", "start")]
    results = app.triggers.fire_many(events) if mode == "fire_many" else asyncio.run(app.triggers.afire_many(events))
    assert [r.ok for r in results] == [True, False, True], results
    assert isinstance(results[1].error, CorruptSession) and "'bad'" in str(results[1].error)
    assert [i.name for i in results[0].scheduled] == ["t_page#0"]


@pytest.mark.parametrize("where", ["memory", "redis"])
def test_a_bug_in_one_sessions_transaction_is_raised_after_the_others_are_dispatched(
    where: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a TriggersError (a bug): fire_many raises it, but only after the
    other sessions, whose transactions committed, sent their messages."""
    from celery_triggers.core import engine

    url = (
        "memory://" if where == "memory" else f"{request.getfixturevalue('redis_server').url}?prefix={unique_prefix()}"
    )
    app = _hold_app(url)
    real = engine.fire_each

    def buggy(snapshot: Any, configs: Any, events: Any, now: float) -> Any:
        if any(kwargs.get("boom") for _, kwargs in events):
            raise RuntimeError("a bug")
        return real(snapshot, configs, events, now)

    monkeypatch.setattr(engine, "fire_each", buggy)
    with pytest.raises(RuntimeError, match="a bug"):
        app.triggers.fire_many([("first", "left"), ("buggy", "left", {"boom": True}), ("last", "left")])
    assert sorted(Hold.sent) == ["first/t_any#0", "last/t_any#0"]
    assert "buggy" not in app.triggers.storage.sessions()


def test_fire_many_on_a_redis_cluster_sends_one_pipeline_per_node(
    redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions spread over the three masters: each round is one pipeline
    per master (redis-py's cluster pipeline refuses EVALSHA), every commit
    lands on its slot's node; after the nodes lost their scripts, they are
    loaded again."""
    import redis

    app = _hold_app(f"{redis_cluster.url}?prefix={unique_prefix()}")
    uids = [f"spread-{n}" for n in range(30)]
    node_pipelines: list[int] = []
    real = redis_batch.send

    def counted(client: Any, calls: list[Any]) -> list[Any]:
        node_pipelines.append(client.connection_pool.connection_kwargs["port"])
        return real(client, calls)

    monkeypatch.setattr(redis_batch, "send", counted)
    results = app.triggers.fire_many([(uid, "left", {"n": n}) for n, uid in enumerate(uids)])
    assert all(r.ok for r in results) and all([i.name for i in r.scheduled] == ["t_any#0"] for r in results)
    assert sorted(node_pipelines) == sorted(node.port for node in redis_cluster.nodes), "one pipeline per master"
    assert sorted(Hold.sent) == sorted(f"{uid}/t_any#0" for uid in uids)
    for node in redis_cluster.nodes:
        redis.Redis(port=node.port).script_flush()
    node_pipelines.clear()
    results = app.triggers.fire_many([(uid, "right") for uid in uids])
    assert all(r.ok for r in results), results
    monkeypatch.undo()
    for n, uid in enumerate(uids):
        assert app.triggers.session(uid).instance("t_pair#0").kwargs == {"left": {"n": n}, "right": {}}


def test_fire_many_on_a_cluster_with_a_stale_slot_map_runs_the_moved_calls_alone(
    redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot map gone stale (as while slots migrate): the pipeline reaches
    a node that does not hold the slot, which answers MOVED; those
    sessions' transactions run alone through the cluster client (which
    follows the redirection) and nothing is lost or doubled."""
    app = _hold_app(f"{redis_cluster.url}?prefix={unique_prefix()}")
    client = app.triggers.storage.client
    wrong = client.get_node(host="127.0.0.1", port=redis_cluster.nodes[0].port)
    assert wrong is not None
    monkeypatch.setattr(client, "get_node_from_key", lambda key, replica=False: wrong)  # everything to one node
    uids = [f"moved-{n}" for n in range(12)]
    results = app.triggers.fire_many([(uid, "left", {"n": n}) for n, uid in enumerate(uids)])
    assert all(r.ok for r in results), results
    monkeypatch.undo()
    owners = {client.get_node_from_key(app.triggers.storage.keys(uid)[0]).port for uid in uids}
    assert len(owners) > 1, "the sessions live on several nodes, so some calls met MOVED"
    for n, uid in enumerate(uids):
        assert app.triggers.session(uid).instances["t_any#0"].kwargs == {"left": {"n": n}}
    assert sorted(Hold.sent) == sorted(f"{uid}/t_any#0" for uid in uids)


class _RaisingHook(TriggerManager):
    def _post_fire(self, trigger_name: str, tasks_scheduled: list[Any]) -> None:
        if self.uid == "hooked":
            raise RuntimeError("the hook failed")


def test_a_raising_post_fire_hook_is_raised_after_the_other_sessions_are_dispatched() -> None:
    app = _hold_app("memory://")
    app.conf.triggers_manager_class = _RaisingHook
    with pytest.raises(RuntimeError, match="the hook failed"):
        app.triggers.fire_many([("first", "left"), ("hooked", "left"), ("last", "left")])
    assert sorted(Hold.sent) == ["first/t_any#0", "hooked/t_any#0", "last/t_any#0"]
