"""The testing toolbox: assertions (and their failure text), the unittest
mixin, the pytest plugin (through pytester), the threading runner and
``wait_until_idle``."""

from __future__ import annotations

import unittest
from typing import Any

import pytest
from celery import Celery

from celery_triggers import TriggerManager, trigger_task
from celery_triggers.testing import (
    TriggerManagerTestCaseMixin,
    assert_instance_abandoned,
    assert_instance_failed,
    assert_instance_finished,
    assert_instance_missing,
    assert_instance_replayed,
    assert_instance_skipped,
    assert_instance_unstarted,
    assert_unresolved_instances,
    assert_unresolved_tasks,
    make_test_app,
    wait_until_idle,
)


def build(app: Celery) -> None:
    @trigger_task(after=["a"], name="t_ok")
    @app.task(shared=False, name="toolbox.ok")
    def ok(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"echo": trigger_kwargs["a"]}

    @trigger_task(after=["a"], name="t_bad")
    @app.task(shared=False, name="toolbox.bad")
    def bad() -> None:
        raise ValueError("kaput")

    @trigger_task(after=["a", "b"], unless=["stop"], name="t_waiting")
    @app.task(shared=False, name="toolbox.waiting")
    def waiting() -> None: ...


@pytest.fixture
def session(triggers_app: Celery, triggers_session: TriggerManager) -> TriggerManager:
    build(triggers_app)
    triggers_session.fire("a", {"v": 1})
    return triggers_session


def test_assertions_pass_on_matching_instances(session: TriggerManager) -> None:
    assert_instance_finished(session, "t_ok#0")
    assert_instance_finished(session, "t_ok#0", expected_result={"echo": {"v": 1}})
    assert_instance_failed(session, "t_bad#0")
    assert_instance_failed(session, "t_bad#0", ValueError)
    assert_instance_unstarted(session, "t_waiting#0")
    assert_instance_missing(session, "t_ok#1")
    assert_unresolved_instances(session, ["t_bad#0", "t_waiting#0"])
    assert_unresolved_tasks(session, ["t_bad", "t_waiting"])
    session.replay_failed_instance("t_bad#0")
    assert_instance_replayed(session, "t_bad#0")
    session.skip_failed_instance("t_bad#1")
    assert_instance_skipped(session, "t_bad#1")
    session.fire("stop")
    assert_instance_abandoned(session, "t_waiting#0")


@pytest.mark.parametrize(
    ("check", "fragments"),
    [
        (
            lambda s: assert_instance_finished(s, "t_bad#0"),
            [
                "t_bad#0 is failed, expected finished",
                'kwargs: {"a": {"v": 1}}',
                "exception: ValueError: kaput",
                "traceback:",
                'raise ValueError("kaput")',
            ],
        ),
        (
            lambda s: assert_instance_finished(s, "t_ok#0", expected_result={"echo": 2}),
            ['t_ok#0 finished with result {"echo": {"v": 1}}, expected {"echo": 2}'],
        ),
        (
            lambda s: assert_instance_failed(s, "t_bad#0", KeyError),
            ["t_bad#0 failed with ValueError, expected KeyError"],
        ),
        (lambda s: assert_instance_failed(s, "t_ok#0"), ["t_ok#0 is finished, expected failed", "result:"]),
        (lambda s: assert_instance_abandoned(s, "t_waiting#0"), ["t_waiting#0 is unstarted, expected abandoned"]),
        (lambda s: assert_instance_replayed(s, "t_ok#0"), ["expected replayed"]),
        (lambda s: assert_instance_skipped(s, "t_ok#0"), ["expected skipped"]),
        (lambda s: assert_instance_unstarted(s, "t_ok#0"), ["expected unstarted"]),
        (lambda s: assert_instance_missing(s, "t_ok#0"), ["t_ok#0 exists, expected no such instance"]),
        (
            lambda s: assert_instance_finished(s, "t_nope#0"),
            ["t_nope#0 does not exist; session", "t_bad#0 (failed), t_ok#0 (finished), t_waiting#0 (unstarted)"],
        ),
        (
            lambda s: assert_unresolved_instances(s, ["t_bad#0"]),
            [
                "unresolved instances are ['t_bad#0', 't_waiting#0'], expected ['t_bad#0']",
                "unexpected: ['t_waiting#0']",
            ],
        ),
        (lambda s: assert_unresolved_tasks(s, ["t_ok"]), ["missing: ['t_ok']", "unexpected: ['t_bad', 't_waiting']"]),
    ],
)
def test_assertion_failures_say_what_is_wrong(session: TriggerManager, check: Any, fragments: list[str]) -> None:
    with pytest.raises(AssertionError) as info:
        check(session)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


class MixinTest(TriggerManagerTestCaseMixin, unittest.TestCase):
    def setUp(self) -> None:
        app = make_test_app()
        build(app)
        self.manager = app.triggers.session("unittest")
        self.manager.fire("a", {"v": 1})

    def test_original_assertion_names(self) -> None:
        self.assertInstanceFinished("t_ok#0", {"echo": {"v": 1}})
        self.assertInstanceFailed("t_bad#0", ValueError)
        self.assertInstanceUnstarted("t_waiting#0")
        self.assertInstanceMissing("t_waiting#1")
        self.assertUnresolvedTasks(["t_bad", "t_waiting"])
        self.assertUnresolvedInstances(["t_bad#0", "t_waiting#0"])
        self.manager.replay_failed_instance("t_bad#0")
        self.assertInstanceReplayed("t_bad#0")
        self.manager.skip_failed_instance("t_bad#1")
        self.assertInstanceSkipped("t_bad#1")
        self.manager.fire("stop")
        self.assertInstanceAbandoned("t_waiting#0")
        with self.assertRaisesRegex(AssertionError, "t_ok#0 is finished, expected abandoned"):
            self.assertInstanceAbandoned("t_ok#0")


def test_the_plugin_fixtures_and_isolation_through_pytester(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from celery_triggers import trigger_task
        from celery_triggers.testing import assert_instance_finished, assert_instance_failed

        def test_first(triggers_app, triggers_session):
            @trigger_task(after=["go"], name="t_double")
            @triggers_app.task(shared=False, name="demo.double")
            def double(trigger_kwargs):
                return trigger_kwargs["go"]["n"] * 2
            triggers_session.fire("go", {"n": 21})
            assert_instance_finished(triggers_session, "t_double#0", expected_result=42)
            assert triggers_app.triggers.storage.sessions() == [triggers_session.uid]

        def test_second_sees_nothing_of_the_first(triggers_app, triggers_session):
            assert triggers_app.triggers.configs == {}
            assert triggers_app.triggers.storage.sessions() == []
            triggers_session.fire("go", {"n": 1})
            assert triggers_session.instances == {}

        def test_failure_text(triggers_app, triggers_session):
            @trigger_task(after=["go"], name="t_boom")
            @triggers_app.task(shared=False, name="demo.boom")
            def boom():
                raise RuntimeError("exploded on purpose")
            triggers_session.fire("go")
            assert_instance_finished(triggers_session, "t_boom#0")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: t_boom#0 is failed, expected finished*",
            "*exception: RuntimeError: exploded on purpose*",
        ]
    )


def test_threading_runner_join_all_waits_for_cascades() -> None:
    app = make_test_app(triggers_runner="threading")
    order: list[str] = []

    @trigger_task(after=["go"], and_every="item", name="t_step")
    @app.task(shared=False, name="threads.step")
    def step(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        order.append(f"step{trigger_kwargs['item']['n']}")
        return {"n": trigger_kwargs["item"]["n"]}

    @trigger_task(after=["go"], and_every="t_step", name="t_after")
    @app.task(shared=False, name="threads.after")
    def after(trigger_kwargs: dict[str, Any]) -> None:
        order.append(f"after{trigger_kwargs['t_step']['n']}")

    session = app.triggers.session("threads")
    session.fire("go")
    for n in range(5):
        session.fire("item", {"n": n})
    app.triggers.runner("threading").join_all(timeout=30)
    instances = session.instances
    assert len(instances) == 10 and all(i.status.value == "finished" for i in instances.values())
    assert sorted(order) == sorted([f"step{n}" for n in range(5)] + [f"after{n}" for n in range(5)])


def test_wait_until_idle_fails_with_a_readable_summary() -> None:
    app = make_test_app(triggers_runner="celery")  # memory broker, no worker: stays scheduled

    @trigger_task(after=["go"], name="t_stuck")
    @app.task(shared=False, name="idle.stuck")
    def stuck() -> None: ...

    session = app.triggers.session("idle")
    session.fire("go")
    with pytest.raises(AssertionError) as info:
        wait_until_idle(session, timeout=0.2, interval=0.02)
    text = str(info.value)
    assert "session 'idle': not idle after 0.2 s: t_stuck#0 scheduled for 0." in text
    assert "(is a worker consuming the queue?)" in text
    idle = make_test_app().triggers.session("empty")
    assert wait_until_idle(idle, timeout=0.1) == {}
