"""Recovery, inspection, hooks and signals through the manager (eager runner)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from celery_triggers import (
    IllegalTransition,
    Instance,
    InvalidKwargs,
    InvalidStatus,
    Status,
    TriggerManager,
    UnknownInstance,
    UnknownTask,
    instance_status_changed,
    trigger_fired,
    trigger_task,
)

from .conftest import make_app

CALLS: list[tuple[Any, ...]] = []


class RecordingManager(TriggerManager):
    def _post_fire(self, trigger_name: str, tasks_scheduled: list[Instance]) -> None:
        CALLS.append(("fire", trigger_name, [i.name for i in tasks_scheduled]))

    def _post_replay(self, task_instance: Instance) -> None:
        CALLS.append(("replay", task_instance.name, task_instance.metadata["replayed_by"], task_instance.status.value))

    def _post_skip(self, instance: Instance, cascade: bool) -> None:
        CALLS.append(("skip", instance.name, cascade, instance.status.value))


def flaky_app(storage: str = "memory://") -> tuple[Celery, dict[str, Any]]:
    """``t_flaky`` fails while ``state['fail']`` is true; ``t_next`` follows it."""
    app = make_app(storage, triggers_manager_class=f"{__name__}:RecordingManager")
    state: dict[str, Any] = {"fail": True, "seen": []}

    @trigger_task(after=["a"], name="t_flaky")
    @app.task(shared=False, name="tests.flaky")
    def flaky(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        state["seen"].append(trigger_kwargs)
        CALLS.append(("run", "t_flaky"))
        if state["fail"]:
            raise RuntimeError("flaky failure")
        return {"ok": trigger_kwargs["a"]}

    @trigger_task(after=["t_flaky"], name="t_next")
    @app.task(shared=False, name="tests.next")
    def after(trigger_kwargs: dict[str, Any]) -> Any:
        CALLS.append(("run", "t_next"))
        return trigger_kwargs["t_flaky"]

    return app, state


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


@pytest.fixture
def failed(storage_url: str) -> tuple[TriggerManager, dict[str, Any]]:
    app, state = flaky_app(storage_url)
    session = app.triggers.session("s")
    session.fire("a", {"v": 1})
    assert session.instances["t_flaky#0"].status is Status.FAILED
    CALLS.clear()
    return session, state


def test_replay_runs_a_clone_and_calls_the_hook_with_the_replayed_instance(
    failed: tuple[TriggerManager, dict[str, Any]],
) -> None:
    session, state = failed
    state["fail"] = False
    clone = session.replay_failed_instance("t_flaky#0")
    assert clone.name == "t_flaky#1"
    instances = session.instances
    assert instances["t_flaky#0"].status is Status.REPLAYED
    assert instances["t_flaky#1"].status is Status.FINISHED
    assert instances["t_flaky#1"].metadata["parent"] == "t_flaky#0"
    assert instances["t_next#0"].result == {"ok": {"v": 1}}
    assert CALLS[:2] == [("replay", "t_flaky#0", "t_flaky#1", "replayed"), ("run", "t_flaky")]
    assert ("fire", "t_flaky", ["t_next#0"]) in CALLS


def test_replay_with_replacement_kwargs(failed: tuple[TriggerManager, dict[str, Any]]) -> None:
    session, state = failed
    state["fail"] = False
    session.replay_failed_instance(session.instances["t_flaky#0"], {"a": {"v": 2}})
    assert state["seen"][-1] == {"a": {"v": 2}}
    assert session.instances["t_next#0"].result == {"ok": {"v": 2}}


def test_replay_uses_the_configuration_as_it_is_now(failed: tuple[TriggerManager, dict[str, Any]]) -> None:
    session, _ = failed
    session.update_configuration({"t_flaky": {"after": ["a"], "run": "tests.next"}})
    session.replay_failed_instance("t_flaky#0")
    assert session.instances["t_flaky#1"].status is Status.FAILED  # tests.next needs t_flaky kwargs
    assert session.instances["t_flaky#1"].metadata["exc_type"] == "KeyError"


def test_skip_without_and_with_cascade(failed: tuple[TriggerManager, dict[str, Any]]) -> None:
    session, _ = failed
    skipped = session.skip_failed_instance("t_flaky#0")
    assert skipped.status is Status.SKIPPED
    assert CALLS == [("skip", "t_flaky#0", False, "skipped")], "no cascade, nothing runs"
    assert "t_next#0" not in session.instances


def test_skip_with_cascade_calls_post_fire_before_post_skip(failed: tuple[TriggerManager, dict[str, Any]]) -> None:
    session, _ = failed
    session.skip_failed_instance("t_flaky#0", cascade=True, result={"fake": True})
    assert CALLS == [
        ("fire", "t_flaky", ["t_next#0"]),
        ("skip", "t_flaky#0", True, "skipped"),
        ("run", "t_next"),
        ("fire", "t_next", []),
    ]
    assert session.instances["t_next#0"].result == {"fake": True}


@pytest.mark.parametrize("action", ["replay", "skip"])
def test_replay_or_skip_of_a_non_failed_instance_is_refused_and_changes_nothing(
    failed: tuple[TriggerManager, dict[str, Any]], action: str
) -> None:
    session, state = failed
    state["fail"] = False
    session.replay_failed_instance("t_flaky#0")
    before = session.debug_repr()
    for name in ("t_flaky#0", "t_flaky#1", "t_next#0"):
        with pytest.raises(IllegalTransition, match=f"{name} is .*only a failed instance"):
            if action == "replay":
                session.replay_failed_instance(name)
            else:
                session.skip_failed_instance(name, cascade=True)
    assert session.debug_repr() == before


@pytest.mark.parametrize("name", ["t_flaky#9", "t_nope#0", "nonsense", "t_flaky#x", 42])
def test_unknown_or_malformed_instance_names_are_typed_errors(
    failed: tuple[TriggerManager, dict[str, Any]], name: Any
) -> None:
    session, _ = failed
    before = session.debug_repr()
    with pytest.raises(UnknownInstance):
        session.replay_failed_instance(name)
    with pytest.raises(UnknownInstance):
        session.update_instance_status(name, "finished")
    assert session.debug_repr() == before


def test_update_status_and_metadata_and_logs(failed: tuple[TriggerManager, dict[str, Any]]) -> None:
    session, _ = failed
    with pytest.raises(InvalidStatus, match="'done' is not a status"):
        session.update_instance_status("t_flaky#0", "done")
    with pytest.raises(InvalidKwargs, match="metadata of t_flaky#0"):
        session.update_instance_metadata("t_flaky#0", {"x": object()})
    session.update_instance_metadata("t_flaky#0", {"ticket": "OPS-1", "log_level": 30})
    assert session.instances["t_flaky#0"].metadata["ticket"] == "OPS-1"
    session.mark_instance_logs_resolved("t_flaky#0")
    assert session.instances["t_flaky#0"].metadata["log_level"] is None
    session.update_instance_status("t_flaky#0", Status.FINISHED, cascade=True, cascade_kwargs={"by": "hand"})
    assert session.instances["t_flaky#0"].status is Status.FINISHED
    assert session.instances["t_next#0"].result == {"by": "hand"}


def test_a_repeated_forced_status_cascades_once(failed: tuple[TriggerManager, dict[str, Any]]) -> None:
    session, _ = failed
    for n in (1, 2):
        session.update_instance_status("t_flaky#0", "finished", cascade=True, cascade_kwargs={"n": n})
    assert [(i.name, i.result) for i in session.instances_of_task("t_next")] == [("t_next#0", {"n": 1})]


def test_forcing_scheduled_sends_the_instance(failed: tuple[TriggerManager, dict[str, Any]]) -> None:
    session, state = failed
    state["fail"] = False
    session.update_instance_status("t_flaky#0", "scheduled")
    assert CALLS.count(("run", "t_flaky")) == 1
    assert session.instances["t_flaky#0"].status is Status.FINISHED
    assert session.instances["t_next#0"].status is Status.FINISHED


def test_inspection(storage_url: str) -> None:
    app, _ = flaky_app(storage_url)
    app.triggers.configure({"t_never": {"after": ["zzz"], "unless": ["stop"], "run": "tests.next"}})
    session = app.triggers.session("s")
    assert [c.name for c in session.get_unresolved_tasks()] == ["t_flaky", "t_never", "t_next"]
    session.fire("a")
    session.fire("stop")
    assert [c.name for c in session.get_unresolved_tasks()] == ["t_flaky", "t_next"]
    assert [i.name for i in session.get_unresolved_instances()] == ["t_flaky#0"]
    flaky = session.instances["t_flaky#0"]
    assert (flaky.can_replay, flaky.can_skip, flaky.can_run, flaky.is_resolved) == (True, True, False, False)
    assert session.latest_kwargs("a") == {} and session.latest_kwargs("never-fired") is None
    with pytest.raises(UnknownTask, match="no trigger task 't_nope' is configured for session 's'"):
        session.instances_of_task("t_nope")
    assert session.instances_of_task(app.triggers.configs["t_flaky"]) == [flaky]
    dump = session.debug_repr()
    assert dump["uid"] == "s" and dump["instances"]["t_flaky#0"]["status"] == "failed"
    assert dump["configuration"]["t_never"]["unless"] == ["stop"]


def test_per_session_configuration_adds_to_app_configs(storage_url: str) -> None:
    app, state = flaky_app(storage_url)
    state["fail"] = False
    special = app.triggers.session("special")
    app.triggers.update_configuration("special", {"t_extra": {"after": ["t_next"], "run": "tests.next"}})
    special.fire("a")
    app.triggers.session("plain").fire("a")
    assert set(special.instances) == {"t_flaky#0", "t_next#0", "t_extra#0"}
    assert set(app.triggers.session("plain").instances) == {"t_flaky#0", "t_next#0"}
    with pytest.raises(Exception, match="t_bad"):
        special.update_configuration({"t_bad": {"after": "x", "run": "r"}})
    assert "t_bad" not in special.get_configuration()


def test_signals_report_fires_and_status_changes() -> None:
    app, state = flaky_app()
    state["fail"] = False
    fired: list[tuple[str, list[str]]] = []
    changes: list[tuple[str, Any, Any]] = []

    def on_fire(sender: Any, trigger: str, scheduled: list[str], **_: Any) -> None:
        fired.append((trigger, scheduled))

    def on_change(sender: Any, instance: str, old: Any, new: Any, **_: Any) -> None:
        changes.append((instance, old and old.value, new.value))

    trigger_fired.connect(on_fire, weak=False)
    instance_status_changed.connect(on_change, weak=False)
    try:
        app.triggers.fire("sig", "a")
    finally:
        trigger_fired.disconnect(on_fire)
        instance_status_changed.disconnect(on_change)
    assert fired == [("a", ["t_flaky#0"]), ("t_flaky", ["t_next#0"]), ("t_next", [])]
    assert changes[:4] == [
        ("t_flaky#0", None, "unstarted"),
        ("t_flaky#0", "unstarted", "scheduled"),
        ("t_flaky#0", "scheduled", "running"),
        ("t_flaky#0", "running", "finished"),
    ]


def test_eager_order_post_fire_completes_before_scheduled_tasks_run() -> None:
    app, state = flaky_app()
    state["fail"] = False
    app.triggers.fire("order", "a")
    assert CALLS == [
        ("fire", "a", ["t_flaky#0"]),
        ("run", "t_flaky"),
        ("fire", "t_flaky", ["t_next#0"]),
        ("run", "t_next"),
        ("fire", "t_next", []),
    ]
