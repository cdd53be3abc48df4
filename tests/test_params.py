"""What a task body receives from ``withParams``: fresh plain ``dict`` and
``list`` data, whichever way its config was made, that it may change and
return, on the in-process runners and on a real worker."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_triggers import Instance, Status, TriggerManager
from celery_triggers.producer.runners.threaded import ThreadingTaskRunner
from celery_triggers.testing import wait_until_idle

from .conftest import make_app
from .params_cases import (
    APP_WIDE,
    CASES,
    CONTROL,
    ECHO,
    PATHS,
    declare,
    declare_overridden,
    directives,
    echo,
    names,
    touch,
    with_trigger,
)

#: Sessions per example, each its own instance of the same config: on a
#: worker with two pool processes, at least two of three run in one process,
#: where data a body changed and the config shared would show.
RUNS = 3

KEYS = st.text(alphabet="abxyz", min_size=1, max_size=3)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**9), 10**9)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=4)
)
JSON = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=12
)
KWARGS = st.dictionaries(KEYS, JSON, max_size=3)


@dataclass
class Case:
    path: str
    name: str
    trigger: str
    params: dict[str, Any]
    fired: list[dict[str, Any]]


@st.composite
def cases(draw: st.DrawFn, path: str, worker: bool) -> Case:
    if worker and path in APP_WIDE:  # declared when the worker imported its app
        case = draw(st.sampled_from(range(len(CASES))))
        name, trigger = names(path, case)
        params = with_trigger(CASES[case], trigger)
    else:
        name, trigger = names(path, 0)
        params = draw(st.dictionaries(st.sampled_from(["p", "q", trigger]), KWARGS, max_size=3))
    return Case(path, name, trigger, params, draw(st.lists(KWARGS, min_size=RUNS, max_size=RUNS)))


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """The original framework's recursive merge, written out (fired wins)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def run_case(app: Celery, case: Case, wait: Callable[[TriggerManager], dict[str, Instance]]) -> None:
    """Fire ``case`` into :data:`RUNS` sessions; each body must have received
    the params merged with its own fired kwargs, untouched by the others."""
    sessions = []
    for fired in case.fired:
        session = app.triggers.session(f"p-{uuid.uuid4().hex[:10]}")
        if case.path in ("session", "override"):
            session.update_configuration({case.name: directives(case.trigger, case.params)})
        elif case.path == "replay":  # first a config that fails, then this one
            session.update_configuration({case.name: directives(case.trigger, {CONTROL: {"fail": True}})})
        session.fire(case.trigger, fired)
        sessions.append(session)
    for session, fired in zip(sessions, case.fired, strict=True):
        instances = wait(session)
        ran = instances[f"{case.name}#0"]
        if case.path == "replay":
            assert ran.status is Status.FAILED, ran.metadata
            session.update_configuration({case.name: directives(case.trigger, case.params)})
            session.replay_failed_instance(ran)
            ran = wait(session)[f"{case.name}#1"]
        expected = merged(case.params, {case.trigger: fired})
        touch(expected)
        assert ran.status is Status.FINISHED, ran.metadata.get("exc_message")
        assert ran.result == expected
    for session in sessions:  # no body changed the config
        assert session.get_configuration()[case.name].to_dict().get("withParams", {}) == case.params


def in_process(runner: str, case: Case, folder: Path) -> None:
    app = make_app(runner=runner)
    app.task(name=ECHO, shared=False)(echo)
    if case.path in APP_WIDE:
        declare(app, case.path, 0, case.params, folder)
    elif case.path == "override":
        declare_overridden(app)
    if runner == "threading":
        run_case(app, case, lambda session: (ThreadingTaskRunner.join_all(), session.instances)[1])
    else:
        run_case(app, case, lambda session: session.instances)


@pytest.mark.parametrize("runner", ["eager", "threading", pytest.param("worker", marks=pytest.mark.worker)])
def test_a_body_receives_fresh_plain_params_it_may_change_and_return_however_its_config_was_made(
    runner: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Decorator, ``configure``, JSON from a file, ``update_configuration``,
    a session's override of an app-wide config, a replay under the current
    config: each body gets ``withParams`` merged with its fired kwargs as new
    ``dict``/``list`` data, changes it at every depth and returns it; the
    config and the next instance see nothing of it."""
    worker = runner == "worker"
    worker_app: Celery | None = request.getfixturevalue("worker_app") if worker else None
    for path in PATHS:

        @settings(
            max_examples=3 if worker else 25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        @given(cases(path, worker))
        def check(case: Case) -> None:
            if worker_app is not None:
                run_case(worker_app, case, lambda session: wait_until_idle(session, timeout=30))
            else:
                in_process(runner, case, tmp_path)

        check()


def test_a_config_is_read_only_at_every_depth_and_shares_nothing_with_its_source() -> None:
    params: dict[str, Any] = {"p": {"x": {"y": 1}, "l": [1, {"z": 2}]}}
    extras: dict[str, Any] = {"meta": {"tags": ["a"], "owner": {"team": "ops"}}}
    app = make_app()
    app.task(name=ECHO, shared=False)(echo)
    app.triggers.configure({"t_echo": {**directives("go", params), **extras}})
    params["p"]["x"]["y"] = 2  # the caller's data changes later: the config does not
    extras["meta"]["tags"].append("b")
    config = app.triggers.configs["t_echo"]
    assert config.to_dict()["withParams"] == {"p": {"x": {"y": 1}, "l": [1, {"z": 2}]}}
    assert config.to_dict()["meta"] == {"tags": ["a"], "owner": {"team": "ops"}}
    nested = config.with_params["p"]
    assert isinstance(nested, MappingProxyType) and isinstance(nested["x"], MappingProxyType)
    assert nested["l"] == (1, {"z": 2}) and isinstance(nested["l"][1], MappingProxyType)
    with pytest.raises(TypeError):
        nested["x"]["y"] = 3  # type: ignore[index]  # a read-only view
    with pytest.raises(TypeError):
        config.extras["meta"]["owner"]["team"] = "dev"
    assert isinstance(config.extras["meta"]["tags"], tuple)
    # What the body received is its own: the config still holds the original.
    session = app.triggers.session("s")
    session.fire("go", {"n": 1})
    received = session.instance("t_echo#0").result["p"]
    assert received == {"x": {"y": 1, "__seen__": 1}, "l": [1, {"z": 2, "__seen__": 1}, "__seen__"], "__seen__": 1}
    assert config.to_dict()["withParams"] == {"p": {"x": {"y": 1}, "l": [1, {"z": 2}]}}
