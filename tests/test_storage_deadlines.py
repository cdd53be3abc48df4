"""The deadline index, one contract on every backend: entries found by due
time, moved when indexed again, dropped only while still at the due time
read; and the deadline sweep on top of it (abandon, leave a ready instance
alone, put back one not due yet, exactly one winner against a trigger
arriving at the same moment)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from celery_triggers import StorageBackend
from celery_triggers.core.state import Status
from celery_triggers.testing import make_test_app
from celery_triggers.worker.deadlines import sweep_deadlines


def uid() -> str:
    return f"dl-{uuid.uuid4().hex[:10]}"


def test_due_entries_are_found_by_due_time_earliest_first(backend: StorageBackend) -> None:
    a, b = uid(), uid()
    backend.index_deadlines(a, {"t_x#0": 1000.0, "t_x#1": 3000.0})
    backend.index_deadlines(b, {"t_y#0": 2000.0})

    assert backend.due_deadlines(999.0) == []
    assert backend.due_deadlines(2000.0) == [(a, "t_x#0", 1000.0), (b, "t_y#0", 2000.0)]
    assert backend.due_deadlines(5000.0, limit=2) == [(a, "t_x#0", 1000.0), (b, "t_y#0", 2000.0)]
    assert backend.due_deadlines(5000.0)[-1] == (a, "t_x#1", 3000.0)


def test_an_entry_indexed_again_moves_and_a_drop_at_the_old_time_keeps_it(backend: StorageBackend) -> None:
    a = uid()
    backend.index_deadlines(a, {"t_x#0": 1000.0})
    backend.index_deadlines(a, {"t_x#0": 5000.0})  # moved (the sweep puts back an entry due too early)

    backend.drop_deadline(a, "t_x#0", 1000.0)  # the time it was read at: no longer its time

    assert backend.due_deadlines(2000.0) == []
    assert backend.due_deadlines(6000.0) == [(a, "t_x#0", 5000.0)]
    backend.drop_deadline(a, "t_x#0", 5000.0)
    assert backend.due_deadlines(6000.0) == []


def test_odd_session_uids_and_names_round_trip(backend: StorageBackend) -> None:
    odd = 'sess "quoted" \\ ünïcode 🎉 ' + uid()
    backend.index_deadlines(odd, {"t_späte:ä#12": 1.5})
    assert backend.due_deadlines(2.0) == [(odd, "t_späte:ä#12", 1.5)]


def ship(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"shipped": True}


def late(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    return dict(trigger_kwargs["shipmentLate"])


@pytest.fixture
def app(storage_url: str) -> Iterator[Celery]:
    app = make_test_app(triggers_storage=storage_url)
    app.triggers.configure(
        {
            "t_ship": {"after": ["paid", "shipped"], "run": "tests.ship", "within": 60, "onTimeout": "shipmentLate"},
            "t_late": {"after": ["shipmentLate"], "run": "tests.late"},
        }
    )
    app.task(name="tests.ship", shared=False)(ship)
    app.task(name="tests.late", shared=False)(late)
    yield app
    app.triggers.reset_storage()


def test_the_sweep_abandons_past_deadlines_only_and_fires_on_timeout_once(app: Celery) -> None:
    late, met, fresh = (app.triggers.session(uid()) for _ in range(3))
    t0 = app.triggers.clock()
    late.fire("paid")
    met.fire("paid")
    met.fire("shipped")

    swept = sweep_deadlines(app.triggers, t0 + 61)
    fresh.fire("paid")  # created after the sweep's time: not due

    assert late.storage["t_ship#0"].status is Status.ABANDONED
    assert late.storage["t_ship#0"].metadata["abandoned_reason"] == "deadline"
    assert late.storage["t_late#0"].result == {"instance": "t_ship#0", "missing": ["shipped"]}
    assert met.storage["t_ship#0"].status is Status.FINISHED
    assert "t_late#0" not in met.storage.instances
    assert {(o.session, o.outcome) for o in swept} >= {(late.uid, "abandoned"), (met.uid, "untouched")}
    # A second sweep finds nothing of theirs: exactly once.
    again = sweep_deadlines(app.triggers, t0 + 120)
    assert [o for o in again if o.session in (late.uid, met.uid)] == []
    assert late.storage.backend.instances(late.uid)["t_late#0"].status is Status.FINISHED
    assert len([i for i in late.storage.instances if i.startswith("t_late")]) == 1


def test_an_entry_due_too_early_is_put_back_at_the_instances_deadline(app: Celery) -> None:
    session = app.triggers.session(uid())
    session.fire("paid")
    deadline = session.storage["t_ship#0"].metadata["deadline"]
    backend = session.storage.backend
    backend.index_deadlines(session.uid, {"t_ship#0": deadline - 50})  # a stale hint

    swept = sweep_deadlines(app.triggers, deadline - 40)

    assert [(o.outcome) for o in swept if o.session == session.uid] == ["later"]
    assert session.storage["t_ship#0"].status is Status.UNSTARTED
    mine = [e for e in backend.due_deadlines(deadline + 1, 10_000) if e[0] == session.uid]
    assert mine == [(session.uid, "t_ship#0", deadline)]


def test_a_trigger_racing_the_deadline_either_runs_the_instance_or_finds_it_abandoned(app: Celery) -> None:
    sessions = [app.triggers.session(uid()) for _ in range(8)]
    for session in sessions:
        session.fire("paid")
    due = max(s.storage["t_ship#0"].metadata["deadline"] for s in sessions)
    app.triggers.clock = lambda: due + 1  # both the fire and the sweep see the deadline passed
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(fn: Any) -> None:
        try:
            barrier.wait()
            fn()
        except BaseException as exc:  # reported below
            errors.append(exc)

    for session in sessions:
        threads = [
            threading.Thread(target=run, args=(lambda s=session: s.fire("shipped"),)),
            threading.Thread(target=run, args=(lambda s=session: s.expire_instance("t_ship#0"),)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    for session in sessions:
        instances = session.storage.instances
        ship = instances["t_ship#0"]
        assert ship.status in (Status.FINISHED, Status.ABANDONED), ship
        if ship.status is Status.FINISHED:  # the trigger won: never abandoned, no timeout
            assert "t_late#0" not in instances
        else:  # the deadline won: the trigger came too late, the timeout fired once
            assert instances["t_late#0"].status is Status.FINISHED
            assert [n for n in instances if n.startswith("t_ship")] == ["t_ship#0"]
