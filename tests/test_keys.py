"""Idempotency keys: a fire with ``key=...`` happens once per session, on
every backend, sequentially, in bulk, from asyncio and from many processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from celery_triggers import InvalidKey, Status
from celery_triggers.core.dispatch import Dispatch
from celery_triggers.producer.runners import TaskRunner

from .conftest import SHARED_BACKENDS, make_app, storage_url_for


class Count(TaskRunner):
    """Sends nothing; counts what was dispatched."""

    name = "count"
    sent: ClassVar[list[str]] = []

    def dispatch(self, items: list[Dispatch]) -> None:
        Count.sent.extend(f"{i.session_uid}/{i.instance.name}" for i in items)


CONFIGS = {
    "t_pay": {"after": ["paid"], "andEvery": "paid", "run": "keys.pay"},
    "t_ship": {"after": ["paid", "packed"], "run": "keys.ship"},
}


def _app(storage: str) -> Any:
    app = make_app(storage, runner=f"{__name__}:Count")
    app.triggers.configure(CONFIGS)
    Count.sent.clear()
    return app


def _snapshot(app: Any, uid: str) -> dict[str, tuple[str, Any]]:
    return {n: (i.status.value, i.kwargs) for n, i in app.triggers.session(uid).instances.items()}


def test_a_second_fire_with_a_key_changes_nothing_and_answers_the_first(storage_url: str) -> None:
    app = _app(storage_url)
    first = app.triggers.fire("order-1", "paid", {"amount": 5}, key="pay-1")
    assert [i.name for i in first] == ["t_pay#0"] and first.duplicate is False
    before = _snapshot(app, "order-1")

    again = app.triggers.fire("order-1", "paid", {"amount": 5}, key="pay-1")

    assert again.duplicate is True
    assert [i.name for i in again] == ["t_pay#0"]
    assert _snapshot(app, "order-1") == before, "a duplicate changes nothing"
    assert Count.sent == ["order-1/t_pay#0"], "sent once"
    other = app.triggers.fire("order-1", "paid", {"amount": 6}, key="pay-2")
    assert [i.name for i in other] == ["t_pay#1"] and not other.duplicate
    assert app.triggers.fire("order-2", "paid", key="pay-1").duplicate is False, "keys are per session"
    unkeyed = app.triggers.session("order-1").fire("paid")
    assert [i.name for i in unkeyed] == ["t_pay#2"], "a fire without a key is never a duplicate"


def test_session_and_afire_paths_take_keys(storage_url: str) -> None:
    app = _app(storage_url)
    session = app.triggers.session("s")
    assert [i.name for i in session.fire("paid", key="k")] == ["t_pay#0"]
    assert session.fire("paid", key="k").duplicate

    async def main() -> tuple[Any, Any]:
        one = await app.triggers.afire("s", "paid", {"n": 1}, key="a")
        two = await app.triggers.afire("s", "paid", {"n": 1}, key="a")
        return one, two

    one, two = asyncio.run(main())
    assert [i.name for i in one] == ["t_pay#1"] and not one.duplicate
    assert [i.name for i in two] == ["t_pay#1"] and two.duplicate
    assert len(Count.sent) == 2


def test_fire_many_with_keys_skips_used_ones_and_repeats_within_one_call(storage_url: str) -> None:
    app = _app(storage_url)
    app.triggers.fire("b", "paid", key="old")
    Count.sent.clear()
    events = [
        ("b", "paid", {"n": 1}, "old"),  # used before
        ("b", "paid", {"n": 2}, "new"),
        ("b", "packed", None, "pack"),
        ("b", "paid", {"n": 2}, "new"),  # used earlier in this call
        ("c", "paid", None, "old"),  # another session: not used there
        ("b", "paid", {"n": 3}),  # no key
    ]
    results = app.triggers.fire_many(events)
    assert [r.duplicate for r in results] == [True, False, False, True, False, False]
    assert [[i.name for i in r.scheduled] for r in results] == [
        ["t_pay#0"],
        ["t_pay#1"],
        ["t_ship#0"],
        ["t_pay#1"],
        ["t_pay#0"],
        ["t_pay#2"],
    ]
    assert sorted(Count.sent) == ["b/t_pay#1", "b/t_pay#2", "b/t_ship#0", "c/t_pay#0"]
    again = asyncio.run(app.triggers.afire_many(events[:3]))
    assert all(r.duplicate for r in again) and sorted(Count.sent) == [
        "b/t_pay#1",
        "b/t_pay#2",
        "b/t_ship#0",
        "c/t_pay#0",
    ]


@pytest.mark.parametrize("key", ["", "  ", "x" * 257, 7, b"k", "a\nb"])
def test_a_bad_key_is_refused_by_name_and_changes_nothing(key: Any) -> None:
    app = _app("memory://")
    with pytest.raises(InvalidKey) as caught:
        app.triggers.fire("s", "paid", key=key)
    assert "idempotency key" in str(caught.value)
    assert repr(key)[:12] in str(caught.value) or "characters long" in str(caught.value)
    assert app.triggers.session("s").instances == {} and Count.sent == []
    results = app.triggers.fire_many([("s", "paid", None, key), ("s", "paid", None, "ok")])
    assert isinstance(results[0].error, InvalidKey) and results[1].ok


def test_keys_go_with_their_session_when_it_is_purged(storage_url: str) -> None:
    app = _app(storage_url)
    session = app.triggers.session("gone")
    session.fire("packed", key="k")  # nothing scheduled: nothing in flight, purgeable
    assert session.fire("packed", key="k").duplicate
    assert app.triggers.storage.purge(0, now=time.time() + 60) == ["gone"]
    assert app.triggers.fire("gone", "packed", key="k").duplicate is False, "the key went with its session"


def _race(storage: str, barrier: Any, results: Any, django: bool) -> None:
    if django:
        from tests.django_project import configure_django

        configure_django()
    app = make_app(storage, runner=f"{__name__}:Count")
    app.triggers.configure(CONFIGS)
    barrier.wait(timeout=60)
    fired = app.triggers.fire("race", "paid", {"amount": 1}, key="webhook-42")
    results.put(([i.name for i in fired], fired.duplicate))


@pytest.mark.slow
@pytest.mark.parametrize("kind", SHARED_BACKENDS)
def test_four_processes_firing_one_key_at_once_have_one_effect(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    storage = storage_url_for(kind, request, tmp_path)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(storage, barrier, results, kind.startswith("django"))) for _ in range(4)]
    for p in procs:
        p.start()
    answers = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(dup for _, dup in answers) == [False, True, True, True], answers
    assert {tuple(names) for names, _ in answers} == {("t_pay#0",)}
    instances = _app(storage).triggers.session("race").instances
    assert {n: i.status for n, i in instances.items()} == {"t_pay#0": Status.SCHEDULED, "t_ship#0": Status.UNSTARTED}
