"""The original Triggers framework's documented scenarios (status.rst,
configuration.rst, inspecting.rst, managers.rst), eager and on a real worker."""

from __future__ import annotations

import logging
import uuid
import warnings
from typing import Any

import pytest
from celery import Celery

from celery_triggers import Instance, Status, TriggerManager
from celery_triggers.testing import wait_until_idle

from .conftest import make_app

SEEN: list[dict[str, Any]] = []
HOOKS: list[tuple[Any, ...]] = []


class HookManager(TriggerManager):
    def _post_fire(self, trigger_name: str, tasks_scheduled: list[Instance]) -> None:
        HOOKS.append(("fire", trigger_name, [i.name for i in tasks_scheduled]))

    def _post_replay(self, task_instance: Instance) -> None:
        HOOKS.append(("replay", task_instance.name, task_instance.status.value))

    def _post_skip(self, task_instance: Instance, cascade: bool) -> None:
        HOOKS.append(("skip", task_instance.name, cascade))


@pytest.fixture
def app() -> Celery:
    SEEN.clear()
    HOOKS.clear()
    app = make_app(triggers_manager_class=f"{__name__}:HookManager")

    @app.task(shared=False, name="orig.record")
    def record(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        SEEN.append(trigger_kwargs)
        return {"kwargs": trigger_kwargs}

    @app.task(shared=False, name="orig.fail")
    def fail() -> None:
        raise RuntimeError("failing task")

    return app


def configure(app: Celery, configs: dict[str, Any]) -> TriggerManager:
    session: TriggerManager = app.triggers.session(uuid.uuid4().hex)
    session.update_configuration(configs)
    return session


def statuses(session: TriggerManager) -> dict[str, str]:
    return {name: i.status.value for name, i in session.instances.items()}


def test_a_non_and_every_trigger_creates_the_instance_the_and_every_one_completes(app: Celery) -> None:
    session = configure(app, {"t_x": {"after": ["dataReceived"], "andEvery": "creditsDepleted", "run": "orig.record"}})
    session.fire("dataReceived", {"d": 1})
    assert [i.name for i in session.get_unresolved_instances()] == ["t_x#0"]
    assert statuses(session) == {"t_x#0": "unstarted"}
    session.fire("creditsDepleted", {"c": 1})
    assert statuses(session) == {"t_x#0": "finished"}, "the same instance, not a new one"
    session.fire("creditsDepleted", {"c": 2})
    assert statuses(session) == {"t_x#0": "finished", "t_x#1": "finished"}
    assert SEEN == [
        {"dataReceived": {"d": 1}, "creditsDepleted": {"c": 1}},
        {"dataReceived": {"d": 1}, "creditsDepleted": {"c": 2}},
    ]


def test_unless_first_abandons_the_instance_at_once(app: Celery) -> None:
    session = configure(app, {"t_a": {"after": ["done"], "unless": ["cancelled"], "run": "orig.record"}})
    session.fire("cancelled")
    instance = session.instances["t_a#0"]
    assert instance.status is Status.ABANDONED and instance.is_resolved
    assert instance.abandon_state == {"cancelled"}
    session.fire("done")
    assert statuses(session) == {"t_a#0": "abandoned"} and SEEN == [], "done runs nothing"
    assert session.get_unresolved_tasks() == []


def test_a_trigger_applies_once_per_instance_first_kwargs_win(app: Celery) -> None:
    session = configure(app, {"t_x": {"after": ["a", "b"], "run": "orig.record"}})
    session.fire("a", {"v": 1})
    session.fire("a", {"v": 2})
    assert session.instances["t_x#0"].kwargs == {"a": {"v": 1}}
    assert session.latest_kwargs("a") == {"v": 2}
    session.fire("b")
    assert SEEN == [{"a": {"v": 1}, "b": {}}]


@pytest.mark.parametrize(
    ("params", "trigger", "fired", "expected"),
    [
        (
            {"_finishStep": {"name": "observations", "status": "clone"}},
            "_finishStep",
            {"name": "Dolly", "greeting": "Hello"},
            {"_finishStep": {"name": "Dolly", "greeting": "Hello", "status": "clone"}},
        ),
        (
            {"t_alpha": {"foo": "bar", "kwargs": {"hacked": True}}},
            "t_alpha",
            {"kwargs": {"dataReceived": {}}},
            {"t_alpha": {"foo": "bar", "kwargs": {"dataReceived": {}, "hacked": True}}},
        ),
        ({"go": {"list": [1, 2], "keep": 1}}, "go", {"list": [3]}, {"go": {"list": [3], "keep": 1}}),
    ],
)
def test_with_params_merge_recursively_and_fired_kwargs_win(
    app: Celery, params: dict[str, Any], trigger: str, fired: dict[str, Any], expected: dict[str, Any]
) -> None:
    session = configure(app, {"t_x": {"after": [trigger], "withParams": params, "run": "orig.record"}})
    session.fire(trigger, fired)
    assert SEEN == [expected]
    assert session.instances["t_x#0"].kwargs == {trigger: fired}, "stored as fired"


def test_hooks_receive_what_the_original_passes(app: Celery) -> None:
    session = configure(
        app,
        {
            "t_failingTask": {"after": [], "andEvery": "fail", "run": "orig.fail"},
            "t_next": {"after": ["t_failingTask"], "run": "orig.record"},
        },
    )
    session.fire("fail")
    session.replay_failed_instance("t_failingTask#0")
    session.skip_failed_instance("t_failingTask#1", cascade=True)
    assert HOOKS == [
        ("fire", "fail", ["t_failingTask#0"]),
        ("replay", "t_failingTask#0", "replayed"),
        ("fire", "t_failingTask", ["t_next#0"]),
        ("skip", "t_failingTask#1", True),  # after the cascade's _post_fire
        ("fire", "t_next", []),  # t_next ran after the skip returned, and cascaded
    ]
    assert session.instances["t_failingTask#0"].metadata["replayed_by"] == "t_failingTask#1"


def test_the_original_inspection_surface(app: Celery) -> None:
    session = configure(
        app,
        {
            "t_x": {"after": ["a", "b"], "run": "orig.record"},
            "t_f": {"after": ["a"], "run": "orig.fail"},
        },
    )
    session.fire("a", {"v": 1})
    session.update_instance_metadata("t_f#0", {"log_level": logging.ERROR})
    storage = session.storage
    assert storage["t_x#0"].config is not None and storage["t_x#0"].config.name == "t_x"
    assert storage["t_x#0"].status == Instance.STATUS_UNSTARTED and storage["t_x#0"].can_schedule
    assert storage["t_f#0"].status == Instance.STATUS_FAILED and not storage["t_f#0"].can_schedule
    assert storage["t_f#0"].log_level == logging.ERROR and storage["t_f#0"].log_level_name == "ERROR"
    assert set(storage.instances) == {"t_f#0", "t_x#0"} and "t_x#0" in storage
    assert [i.name for i in storage.iter_instances()] == ["t_f#0", "t_x#0"]
    assert set(storage.tasks) == {"t_f", "t_x"}
    assert storage.latest_kwargs == {"a": {"v": 1}}
    assert [c.name for c in storage.get_unresolved_tasks()] == ["t_f", "t_x"]
    assert [i.name for i in storage.get_unresolved_instances()] == ["t_f#0", "t_x#0"]
    assert [i.name for i in storage.get_instances_with_unresolved_logs()] == ["t_f#0"]
    assert list(storage.instances_of_task("t_x")) == ["t_x#0"]
    assert set(storage.debug_repr()["instances"]) == {"t_f#0", "t_x#0"}
    with pytest.raises(KeyError):
        storage["t_x#9"]


def test_reading_an_instance_through_session_storage_raises_no_warning(app: Celery) -> None:
    """``session.storage["t_x#0"]`` is the original framework's documented
    form: supported, so it warns about nothing."""
    session = configure(app, {"t_x": {"after": ["a", "b"], "run": "orig.record"}})
    session.fire("a", {"v": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        instance = session.storage["t_x#0"]
    assert [str(w.message) for w in caught] == []
    assert instance.name == "t_x#0" and instance.kwargs == {"a": {"v": 1}}
    assert instance.config is not None and instance.config.name == "t_x"


# -- the same scenarios on a real worker --------------------------------------


@pytest.mark.worker
def test_original_scenarios_on_a_real_worker(worker_app: Celery) -> None:
    session = worker_app.triggers.session(f"orig-{uuid.uuid4().hex[:8]}")
    session.update_configuration(
        {
            "t_every": {"after": ["dataReceived"], "andEvery": "creditsDepleted", "run": "tests.context_only"},
            "t_unless": {"after": ["done"], "unless": ["cancelled"], "run": "tests.context_only"},
            "t_params": {
                "after": ["_finishStep"],
                "withParams": {"_finishStep": {"name": "observations", "status": "clone"}},
                "run": "tests.context_only",
            },
        }
    )
    session.fire("dataReceived", {"d": 1})
    session.fire("cancelled")
    assert statuses(session) == {"t_every#0": "unstarted", "t_unless#0": "abandoned"}
    session.fire("creditsDepleted")
    session.fire("done")
    session.fire("_finishStep", {"name": "Dolly", "greeting": "Hello"})
    instances = wait_until_idle(session)
    assert {n: i.status.value for n, i in instances.items()} == {
        "t_every#0": "finished",
        "t_params#0": "finished",
        "t_unless#0": "abandoned",
    }
    assert instances["t_every#0"].result == {"seen": {"dataReceived": {"d": 1}, "creditsDepleted": {}}}
    assert instances["t_params#0"].result == {
        "seen": {"_finishStep": {"name": "Dolly", "greeting": "Hello", "status": "clone"}}
    }
