"""Public, named hooks: ``app.triggers.add_hooks(Hooks())`` is called after
every committed operation, after the original framework's ``_post_*``
overrides, on every runner and on a real worker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from celery_triggers import Hooks, Status, TriggerManager, trigger_task
from celery_triggers.core.state import Instance
from celery_triggers.producer.runners import TaskRunner, register_runner

from .conftest import Worker, make_app, wait_for


class Recorder(Hooks):
    def __init__(self, calls: list[tuple[Any, ...]]):
        self.calls = calls

    def fired(self, session: TriggerManager, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        self.calls.append(("fired", session.uid, trigger, kwargs, [i.name for i in scheduled]))

    def status_changed(self, session: TriggerManager, instance: str, old: Status | None, new: Status) -> None:
        self.calls.append(("status", instance, old and old.value, new.value))

    def replayed(self, session: TriggerManager, instance: Instance) -> None:
        self.calls.append(("replayed", instance.name, instance.metadata["replayed_by"]))

    def skipped(self, session: TriggerManager, instance: Instance, cascade: bool) -> None:
        self.calls.append(("skipped", instance.name, cascade))


class Overriding(TriggerManager):
    calls: list[tuple[Any, ...]] = []

    def _post_fire(self, trigger_name: str, tasks_scheduled: list[Instance]) -> None:
        self.calls.append(("_post_fire", trigger_name))


def _app(runner: str, calls: list[tuple[Any, ...]], **conf: Any) -> Celery:
    app = make_app(runner=runner, **conf)

    @trigger_task(after=["go"], name="t_flaky")
    @app.task(shared=False, name="hooks.flaky")
    def flaky(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        if trigger_kwargs["go"].get("fail"):
            raise ValueError("asked to fail")
        return {"ok": True}

    @trigger_task(after=["t_flaky"], name="t_after")
    @app.task(shared=False, name="hooks.after")
    def after() -> None: ...

    app.triggers.add_hooks(Recorder(calls))
    return app


@pytest.mark.parametrize("runner", ["eager", "threading"])
def test_hooks_see_every_fire_and_transition_of_a_cascade(runner: str) -> None:
    calls: list[tuple[Any, ...]] = []
    app = _app(runner, calls)
    app.triggers.fire("s", "go", {"n": 1})
    if runner == "threading":
        app.triggers.runner("threading").join_all(10)
    fires = [c for c in calls if c[0] == "fired"]
    if runner == "threading":  # a cascade's own task may announce before the cascade's fire does
        fires.sort(key=lambda c: ["go", "t_flaky", "t_after"].index(c[2]))
    assert fires == [
        ("fired", "s", "go", {"n": 1}, ["t_flaky#0"]),
        ("fired", "s", "t_flaky", {"ok": True}, ["t_after#0"]),
        ("fired", "s", "t_after", {}, []),
    ]
    statuses = [c[1:] for c in calls if c[0] == "status"]
    assert [s for s in statuses if s[0] == "t_flaky#0"] == [
        ("t_flaky#0", None, "unstarted"),
        ("t_flaky#0", "unstarted", "scheduled"),
        ("t_flaky#0", "scheduled", "running"),
        ("t_flaky#0", "running", "finished"),
    ]


def test_replay_and_skip_reach_the_hooks_after_the_original_overrides() -> None:
    calls: list[tuple[Any, ...]] = []
    Overriding.calls = calls
    app = _app("eager", calls, triggers_manager_class=Overriding)
    session = app.triggers.session("s")
    session.fire("go", {"fail": True})
    assert session.instance("t_flaky#0").status is Status.FAILED
    calls.clear()
    clone = session.replay_failed_instance("t_flaky#0")
    assert ("replayed", "t_flaky#0", clone.name) in calls
    calls.clear()
    session.skip_failed_instance(clone.name, cascade=True, result={"x": 1})
    names = [c[0] for c in calls]
    assert names.index("_post_fire") < names.index("fired") < names.index("skipped"), calls
    assert ("skipped", clone.name, True) in calls
    assert Overriding.overrides_post_hooks and not TriggerManager.overrides_post_hooks


def test_a_hook_that_raises_reaches_the_caller_after_the_commit() -> None:
    class Broken(Hooks):
        def fired(self, session: Any, trigger: str, kwargs: Any, scheduled: Any) -> None:
            raise RuntimeError("hook broke")

    app = make_app()
    app.triggers.configure({"t_x": {"after": ["go"], "run": "nothing.registered", "using": "celery"}})
    app.triggers.add_hooks(Broken())
    with pytest.raises(RuntimeError, match="hook broke"):
        app.triggers.session("s").fire("never-watched")
    assert app.triggers.session("s").latest_kwargs("never-watched") == {}, "committed before the hook ran"


def test_only_hooks_objects_are_added_and_once() -> None:
    app = make_app()
    with pytest.raises(TypeError, match="Hooks instance"):
        app.triggers.add_hooks(object())
    hooks = Hooks()
    app.triggers.add_hooks(hooks)
    app.triggers.add_hooks(hooks)
    assert app.triggers.hooks == (hooks,)
    assert app.triggers.session("s").runs_user_code


def test_a_worker_calls_the_hooks_its_app_registers_for_cascades(worker: Worker, worker_app: Celery) -> None:
    session = worker_app.triggers.session("hooked-on-the-worker")
    session.fire("ping", {"p": 1})
    session.fire("pong", {"q": 2})
    session.wait(30)
    path = Path(worker.data) / "hook-fires"

    def seen() -> list[dict[str, Any]]:
        lines = path.read_text().splitlines() if path.exists() else []
        return [r for r in map(json.loads, lines) if r["session"] == "hooked-on-the-worker"]

    records = wait_for(seen, 30, "the worker's hook lines")
    assert {"session": "hooked-on-the-worker", "trigger": "t_probe", "scheduled": ["t_contextOnly#0"]} in records


class Observer(Hooks):
    """The observers' hooks: what is open when, and the records seen."""

    def __init__(self, calls: list[tuple[Any, ...]]):
        self.calls = calls
        self.open: list[str] = []

    def instance_changed(self, session: TriggerManager, instance: Instance, old: Status | None, new: Status) -> None:
        self.calls.append(("changed", instance.name, instance.task, new.value, instance.metadata.get("task_id")))

    def firing(self, session: TriggerManager, triggers: list[str], started: float) -> Any:
        return self._context("firing " + ",".join(triggers), started)

    def running(self, session_uid: str, instance: str, task: Any) -> Any:
        return self._context(f"running {instance} {task.name} {task.request.id}", None)

    def fired(self, session: TriggerManager, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        self.calls.append(("fired", trigger, list(self.open)))

    def _context(self, what: str, started: float | None) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def context() -> Any:
            self.open.append(what)
            self.calls.append(("enter", what, started is not None and started <= time.time()))
            try:
                yield
            finally:
                self.open.pop()
                self.calls.append(("exit", what))

        return context()


class SeenRunner(TaskRunner):
    """Records what the observer had open when each instance was sent."""

    name = "seen"
    observer: Observer | None = None

    def dispatch(self, items: list[Any]) -> None:
        assert self.observer is not None
        for item in items:
            self.observer.calls.append(("sent", item.instance.name, list(self.observer.open)))


def test_observer_hooks_see_records_and_wrap_fires_and_runs() -> None:
    """instance_changed gets the record (task, task id once scheduled);
    firing is open while the fire's messages go out and its fired hook
    runs; running is open around a run, and a cascade's firing inside it."""
    calls: list[tuple[Any, ...]] = []
    app = _app("eager", calls)
    observer = Observer(calls)
    app.triggers.add_hooks(observer)
    app.triggers.fire("s", "go", {})
    manager = app.triggers.session("s")
    ids = {name: i.metadata["task_id"] for name, i in manager.instances.items()}
    changed = [c for c in calls if c[0] == "changed"]
    assert [(c[1], c[3]) for c in changed if c[1] == "t_flaky#0"] == [
        ("t_flaky#0", "unstarted"),
        ("t_flaky#0", "scheduled"),
        ("t_flaky#0", "running"),
        ("t_flaky#0", "finished"),
    ]
    assert all(c[4] == ids[c[1]] for c in changed if c[3] != "unstarted")
    assert ("fired", "go", ["firing go"]) in calls
    run = f"running t_flaky#0 hooks.flaky {ids['t_flaky#0']}"
    assert ("fired", "t_flaky", [run, "firing t_flaky"]) in calls
    assert ("enter", "firing go", True) in calls
    entered = [c[1] for c in calls if c[0] == "enter"]
    exited = [c[1] for c in calls if c[0] == "exit"]
    assert entered.index(run) < entered.index("firing t_flaky")
    assert exited.index("firing t_flaky") < exited.index(run)


def test_the_firing_context_is_open_while_the_messages_go_out() -> None:
    calls: list[tuple[Any, ...]] = []
    register_runner("seen", SeenRunner)
    app = _app("seen", calls)
    observer = SeenRunner.observer = Observer(calls)
    app.triggers.add_hooks(observer)
    app.triggers.fire("s", "go", {})
    assert ("sent", "t_flaky#0", ["firing go"]) in calls
    assert [c for c in calls if c[0] == "enter"] == [("enter", "firing go", True)]  # nothing else fired


def test_no_firing_context_for_an_operation_that_fires_nothing() -> None:
    """A failed run cascades nothing: its fail opens no firing context."""
    calls: list[tuple[Any, ...]] = []
    app = _app("eager", calls)
    app.triggers.add_hooks(Observer(calls))
    app.triggers.fire("s", "go", {"fail": True})  # the eager runner records the failure
    entered = [c[1].split(" ")[:2] for c in calls if c[0] == "enter"]
    assert entered == [["firing", "go"], ["running", "t_flaky#0"]]
    assert ("changed", "t_flaky#0", "t_flaky", "failed") in [c[:4] for c in calls]
