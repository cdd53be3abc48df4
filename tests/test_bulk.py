"""fire_many, afire and afire_many (part of #18)."""

from __future__ import annotations

import asyncio

import pytest

from celery_triggers import InvalidKwargs, InvalidName, Status

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
