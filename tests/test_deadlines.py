"""Deadlines (``within`` / ``on_timeout``) in-process: every way to declare
one is validated like the other directives and behaves the same; the engine
decides what a passed deadline does; ``frozen_clock`` moves time for the
eager and threading runners, so nothing here sleeps."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from celery_triggers import ConfigurationError, TaskContext, TriggerTask, trigger_task
from celery_triggers.core import engine
from celery_triggers.core.config import parse_config
from celery_triggers.core.state import Instance, Snapshot, Status, TaskRecord
from celery_triggers.testing import (
    assert_instance_abandoned,
    assert_instance_finished,
    assert_instance_unstarted,
    frozen_clock,
    make_test_app,
)

SHIP = {"after": ["paid", "shipped"], "run": "tests.ship", "within": 3600, "onTimeout": "shipmentLate"}
LATE = {"after": ["shipmentLate"], "run": "tests.late"}


def ship(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"tracking": "T-1"}


def late(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    return dict(trigger_kwargs["shipmentLate"])


def echo(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    return trigger_kwargs


@pytest.fixture(params=["eager", "threading"])
def app(request: pytest.FixtureRequest) -> Iterator[Celery]:
    app = make_test_app(triggers_runner=request.param)
    app.task(name="tests.ship", shared=False)(ship)
    app.task(name="tests.late", shared=False)(late)
    app.task(name="tests.echo", shared=False)(echo)
    yield app
    app.triggers.reset_storage()


def new_session(app: Celery) -> Any:
    return app.triggers.session(f"s-{uuid.uuid4().hex[:8]}")


# -- validation, every path ------------------------------------------------------


@pytest.mark.parametrize(
    ("directives", "message"),
    [
        ({"within": 0}, r"directive 'within': expected a number of seconds > 0, got 0"),
        ({"within": -5}, r"directive 'within': expected a number of seconds > 0"),
        ({"within": float("inf")}, r"directive 'within': expected a number of seconds > 0"),
        ({"within": "1h"}, r"directive 'within': expected a number of seconds, got str '1h'"),
        ({"within": True}, r"directive 'within': expected a number of seconds, got bool"),
        ({"onTimeout": "late"}, r"directive 'onTimeout': needs 'within'"),
        ({"on_timeout": "late"}, r"directive 'onTimeout': needs 'within'"),
        (
            {"within": 5, "onTimeout": 7},
            r"directive 'onTimeout': expected a non-empty trigger name \(string\), got int",
        ),
        ({"within": 5, "onTimeout": "a\nb"}, r"directive 'onTimeout': .*control character"),
        ({"withn": 5}, r"directive 'withn': unknown directive; did you mean 'within'\?"),
        ({"within": 5, "onTimout": "x"}, r"did you mean 'onTimeout' or 'on_timeout'\?"),
        ({"within": 5, "onTimeout": "x", "on_timeout": "y"}, r"directive given twice"),
    ],
)
def test_json_configs_are_validated(directives: dict[str, Any], message: str) -> None:
    app = make_test_app()
    with pytest.raises(ConfigurationError, match=message):
        app.triggers.configure({"t_ship": {"after": ["paid"], "run": "tests.ship", **directives}})
    assert "t_ship" not in app.triggers.configs  # nothing half-configured


def test_both_spellings_and_a_round_trip_through_the_seed_format() -> None:
    snake = parse_config(
        "t_ship", {"after": ["paid", "shipped"], "run": "tests.ship", "within": 3600, "on_timeout": "shipmentLate"}
    )
    camel = parse_config("t_ship", SHIP)
    assert snake == camel and camel.within == 3600.0 and camel.on_timeout == "shipmentLate"
    assert camel.to_dict()["within"] == 3600.0 and camel.to_dict()["onTimeout"] == "shipmentLate"
    assert parse_config("t_ship", camel.to_dict()) == camel
    assert parse_config("t_x", {"after": ["a"], "run": "r", "within": 2}).on_timeout is None


def test_the_decorator_takes_within_and_on_timeout_and_refuses_bad_ones() -> None:
    app = make_test_app()

    @trigger_task(after=["ping"], within=3600, on_timeout="pingLate")
    @app.task(shared=False)
    def pinged(trigger_kwargs: dict[str, Any]) -> None: ...

    @trigger_task(after=["pingLate"], within=60, on_timeout=pinged)  # a task stands for its trigger task
    @app.task(shared=False)
    def escalate(trigger_kwargs: dict[str, Any]) -> None: ...

    assert (app.triggers.configs["t_pinged"].within, app.triggers.configs["t_pinged"].on_timeout) == (
        3600.0,
        "pingLate",
    )
    assert app.triggers.configs["t_escalate"].on_timeout == "t_pinged"
    refused: list[tuple[dict[str, Any], str]] = [
        ({"within": "soon"}, "directive 'within': expected a number of seconds"),
        ({"on_timeout": "late"}, "directive 'onTimeout': needs 'within'"),
        ({"withn": 5}, r"'withn' \(did you mean 'within'\?\)"),
    ]
    for number, (kwargs, message) in enumerate(refused):
        with pytest.raises(ConfigurationError, match=message):

            @trigger_task(after=["x"], name="t_bad", **kwargs)
            @app.task(shared=False, name=f"tests.bad{number}")
            def bad(trigger_kwargs: dict[str, Any]) -> None: ...

    assert "t_bad" not in app.triggers.configs


def test_session_configs_are_validated_and_a_refusal_changes_nothing() -> None:
    app = make_test_app()
    app.triggers.configure({"t_ship": {"after": ["paid", "shipped"], "run": "tests.ship"}})
    session = new_session(app)
    for configs in (
        {"t_ship": {**SHIP, "within": "1h"}},
        {"t_ship": {**SHIP, "within": None}},  # onTimeout without within
        {"t_ship": {**SHIP, "withinn": 5}},
    ):
        with pytest.raises(ConfigurationError):
            session.update_configuration(configs)
        with pytest.raises(ConfigurationError):
            app.triggers.update_configuration(session.uid, configs)
    assert session.storage.read(lambda txn: txn.read_configs()) == {}


# -- behaviour ---------------------------------------------------------------------


def test_a_passed_deadline_abandons_the_instance_and_fires_on_timeout_once(app: Celery) -> None:
    app.triggers.configure({"t_ship": SHIP, "t_late": LATE})
    session = new_session(app)
    with frozen_clock(app) as clock:
        session.fire("paid", {"amount": 5})
        assert clock.advance(3599) == []
        assert_instance_unstarted(session, "t_ship#0")

        outcomes = clock.advance(1)

        assert [(o.instance, o.outcome) for o in outcomes] == [("t_ship#0", "abandoned")]
        instance = assert_instance_abandoned(session, "t_ship#0")
        assert instance.metadata["abandoned_reason"] == "deadline"
        assert instance.metadata["missing"] == ["shipped"]
        assert instance.metadata["abandoned_at"] == clock.now
        assert_instance_finished(session, "t_late#0", expected_result={"instance": "t_ship#0", "missing": ["shipped"]})
        assert clock.advance(10_000) == []  # exactly once
        session.fire("shipped")  # too late: the abandoned instance never runs
        assert session.storage["t_ship#0"].status is Status.ABANDONED
        assert sorted(session.storage.instances) == ["t_late#0", "t_ship#0"]


def test_an_instance_ready_in_time_is_never_touched(app: Celery) -> None:
    app.triggers.configure({"t_ship": SHIP, "t_late": LATE})
    session = new_session(app)
    with frozen_clock(app) as clock:
        session.fire("paid")
        clock.advance(3500)
        session.fire("shipped")
        clock.join()  # the threading runner's work done

        outcomes = clock.advance(200)

    assert [(o.instance, o.outcome) for o in outcomes] == [("t_ship#0", "untouched")]
    assert_instance_finished(session, "t_ship#0", expected_result={"tracking": "T-1"})
    assert "t_late#0" not in session.storage.instances


def test_the_deadline_counts_from_the_first_trigger_and_each_instance_has_its_own(app: Celery) -> None:
    app.triggers.configure(
        {"t_page": {"after": ["ready"], "andEvery": "page", "run": "tests.ship", "within": 100, "onTimeout": "slow"}}
    )
    session = new_session(app)
    with frozen_clock(app, start=1_000_000.0) as clock:
        session.fire("page")  # t_page#0 at t=0
        clock.advance(50)
        session.fire("page")  # t_page#1 at t=50
        assert session.storage["t_page#1"].metadata["deadline"] == 1_000_150.0
        first = clock.advance(60)  # t=110: only #0 is late
        assert [(o.instance, o.outcome) for o in first] == [("t_page#0", "abandoned")]
        assert_instance_unstarted(session, "t_page#1")
        assert [(o.instance, o.outcome) for o in clock.advance(40)] == [("t_page#1", "abandoned")]


def test_a_deadline_cascades_like_any_fire_through_on_timeout_chains(app: Celery) -> None:
    app.triggers.configure(
        {
            "t_ship": SHIP,
            "t_late": {**LATE, "after": ["shipmentLate", "approved"], "within": 60, "onTimeout": "escalated"},
            "t_escalate": {"after": ["escalated"], "run": "tests.echo"},
        }
    )
    session = new_session(app)
    with frozen_clock(app) as clock:
        session.fire("paid")
        clock.advance(3600)  # t_ship#0 late -> t_late#0 created (awaits "approved")
        assert_instance_unstarted(session, "t_late#0")
        clock.advance(60)  # its own deadline passes -> escalated
        assert_instance_abandoned(session, "t_late#0")
        assert_instance_finished(session, "t_escalate#0")
        assert session.storage["t_escalate#0"].kwargs["escalated"] == {
            "instance": "t_late#0",
            "missing": ["approved"],
        }


def test_a_per_session_override_gives_that_session_a_deadline_only(app: Celery) -> None:
    app.triggers.configure({"t_ship": {**SHIP, "within": None, "onTimeout": None}, "t_late": LATE})
    plain, hurried = new_session(app), new_session(app)
    hurried.update_configuration({"t_ship": {**SHIP, "within": 10}})
    with frozen_clock(app) as clock:
        plain.fire("paid")
        hurried.fire("paid")
        clock.advance(10)
    assert_instance_unstarted(plain, "t_ship#0")
    assert_instance_abandoned(hurried, "t_ship#0")
    assert_instance_finished(hurried, "t_late#0")


def test_update_configuration_by_uid_and_the_deadline_kept_by_an_instance(app: Celery) -> None:
    app.triggers.configure({"t_ship": SHIP, "t_late": LATE})
    session = new_session(app)
    app.triggers.update_configuration(session.uid, {"t_ship": {**SHIP, "within": 30}})
    with frozen_clock(app) as clock:
        session.fire("paid")  # deadline: 30 s, kept by the instance
        app.triggers.update_configuration(session.uid, {"t_ship": {**SHIP, "within": 5000}})
        clock.advance(30)
    assert_instance_abandoned(session, "t_ship#0")


class Packer(TriggerTask):
    name = "tests.deadlines.pack"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"packed": True}


def test_class_based_tasks_take_deadlines_from_their_config(app: Celery) -> None:
    app.register_task(type("Packer", (Packer,), {})())
    with pytest.raises(ConfigurationError, match="directive 'within'"):
        app.triggers.configure({"t_pack": {"after": ["ordered", "picked"], "run": Packer.name, "within": []}})
    app.triggers.configure(
        {
            "t_pack": {"after": ["ordered", "picked"], "run": Packer.name, "within": 20, "on_timeout": "packLate"},
            "t_late": {**LATE, "after": ["packLate"]},
        }
    )
    done, slow = new_session(app), new_session(app)
    with frozen_clock(app) as clock:
        done.fire("ordered")
        done.fire("picked")
        slow.fire("picked")
        clock.advance(20)
    assert_instance_finished(done, "t_pack#0", expected_result={"packed": True})
    assert_instance_abandoned(slow, "t_pack#0")
    assert slow.storage["t_pack#0"].metadata["missing"] == ["ordered"]


def test_the_clock_only_moves_forward() -> None:
    app = make_test_app()
    with frozen_clock(app) as clock, pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    assert app.triggers.clock is time.time  # restored: the real time again


# -- the pure engine ----------------------------------------------------------------


def unstarted(deadline: float | None) -> Snapshot:
    instance = Instance("t_ship", 0, Status.UNSTARTED, {"paid": {}}, awaiting=["shipped"])
    if deadline is not None:
        instance.metadata["deadline"] = deadline
    return Snapshot(tasks={"t_ship": TaskRecord("t_ship", 1)}, instances={"t_ship#0": instance})


def test_engine_expire_decides_and_never_touches_its_input() -> None:
    configs = {"t_ship": parse_config("t_ship", SHIP)}
    snapshot = unstarted(100.0)

    early = engine.expire(snapshot, configs, "t_ship#0", 99.0)
    passed = engine.expire(snapshot, configs, "t_ship#0", 100.0)

    assert early.empty and early.deadlines == {"t_ship#0": 100.0}  # not yet: put back at its deadline
    assert passed.instances["t_ship#0"].status is Status.ABANDONED and passed.deadlines == {}
    assert passed.triggers["shipmentLate"].kwargs == {"instance": "t_ship#0", "missing": ["shipped"]}
    assert snapshot.instances["t_ship#0"].status is Status.UNSTARTED
    for gone in (
        engine.expire(Snapshot(), configs, "t_ship#0", 1e12),
        engine.expire(unstarted(None), configs, "t_ship#0", 1e12),
    ):
        assert gone.empty and gone.deadlines == {}  # nothing to do: the index entry goes


def test_an_instance_created_and_ready_at_once_or_a_replay_clone_has_no_deadline() -> None:
    configs = {"t_one": parse_config("t_one", {"after": ["go"], "run": "r", "within": 5})}
    changes = engine.fire(Snapshot(), configs, "go", {}, 10.0)
    assert changes.instances["t_one#0"].status is Status.SCHEDULED and changes.deadlines == {}


def test_the_recovery_sweep_indexes_again_a_deadline_the_index_missed() -> None:
    from celery_triggers.worker.deadlines import sweep_deadlines
    from celery_triggers.worker.recovery import recover

    app = make_test_app()
    app.task(name="tests.ship", shared=False)(ship)
    app.task(name="tests.late", shared=False)(late)
    app.triggers.configure({"t_ship": SHIP, "t_late": LATE})
    session = new_session(app)
    with frozen_clock(app, start=time.time() - 7200):  # created two hours ago
        session.fire("paid")
    deadline = session.storage["t_ship#0"].metadata["deadline"]
    # Its producer died between the commit and the index write: no entry.
    app.triggers.storage.drop_deadline(session.uid, "t_ship#0", deadline)
    assert sweep_deadlines(app.triggers) == []

    recover(app.triggers)
    outcomes = sweep_deadlines(app.triggers)

    assert [(o.instance, o.outcome) for o in outcomes] == [("t_ship#0", "abandoned")]
    assert_instance_finished(session, "t_late#0")
