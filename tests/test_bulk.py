"""fire_many, afire and afire_many (part of #18)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from celery_triggers import DispatchError, InvalidKwargs, InvalidName, Status
from celery_triggers.runners import Dispatch, TaskRunner

from .conftest import make_app, unique_prefix
from .servers import RedisServer


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


def _count_transactions(backend: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The session UID of every transaction ``backend`` opens from now on."""
    transactions: list[str] = []
    real = backend.transaction

    def counted(uid: str, *args: Any, **kwargs: Any) -> Any:
        transactions.append(uid)
        return real(uid, *args, **kwargs)

    monkeypatch.setattr(backend, "transaction", counted)
    return transactions


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
    transactions = _count_transactions(backend, monkeypatch)
    results = app.triggers.fire_many([(f"bulk-{uid}", trigger, *kwargs) for uid, trigger, *kwargs in EVENTS])
    assert sorted(transactions) == ["bulk-a", "bulk-b", "bulk-c"], "one transaction per session"
    monkeypatch.undo()
    for uid in "abc":
        assert _state(app, f"bulk-{uid}") == _state(app, f"loop-{uid}"), uid
    assert sorted(Hold.sent) == sorted(s.replace("loop-", "bulk-") for s in looped)
    assert [[i.name for i in r.scheduled] for r in results] == per_event
    assert sum(map(len, per_event)) >= 5 and all(r.ok for r in results)


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
    commits: list[Any] = []
    real = backend._commit

    def counted(*args: Any, **kwargs: Any) -> Any:
        commits.append(reply := real(*args, **kwargs))
        return reply

    monkeypatch.setattr(backend, "_commit", counted)
    results = mine.triggers.fire_many([("shared", "page", {"by": "bulk", "n": n}) for n in range(3)])
    assert [int(reply[0]) for reply in commits] == [0, 1], "refused with the fresh data, then committed once"
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
    assert len(transactions) <= 20, f"{len(transactions)} transactions for 100 events over 10 sessions"
    monkeypatch.undo()
    for s in range(10):
        pages = [i.kwargs["page"]["n"] for i in app.triggers.session(f"s{s}").instances.values()]
        assert sorted(pages) == list(range(s, 100, 10))
