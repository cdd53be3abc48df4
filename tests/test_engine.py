"""The pure engine, without Celery or storage."""

from __future__ import annotations

import itertools

import pytest

from celery_triggers import IllegalTransition, UnknownInstance
from celery_triggers.core import engine
from celery_triggers.core.state import Snapshot, Status

from .sim import Sim

SURVEY = {
    "t_createApplicant": {"after": ["startSession", "observationsReceived"], "run": "create"},
    "t_computeScore": {"after": ["t_createApplicant", "sessionFinalized"], "run": "score"},
}


@pytest.mark.parametrize("order", list(itertools.permutations(["a", "b", "c"])))
def test_every_firing_order_of_the_after_triggers_gives_one_run(order: tuple[str, ...]) -> None:
    sim = Sim({"t_x": {"after": ["a", "b", "c"], "run": "x"}})
    ready = [sim.fire(name, {"from": name}) for name in order]
    assert ready[:2] == [[], []], "nothing may run before every after-trigger fired"
    assert ready[2] == ["t_x#0"]
    assert sim.statuses() == {"t_x#0": "scheduled"}
    assert sim["t_x#0"].kwargs == {"a": {"from": "a"}, "b": {"from": "b"}, "c": {"from": "c"}}


def test_instance_is_unstarted_until_the_last_trigger() -> None:
    sim = Sim({"t_x": {"after": ["a", "b"], "run": "x"}})
    sim.fire("a")
    assert sim.statuses() == {"t_x#0": "unstarted"}


def test_one_shot_task_does_not_run_again_when_triggers_fire_again() -> None:
    sim = Sim({"t_x": {"after": ["a", "b"], "run": "x"}})
    sim.fire("a")
    sim.fire("b")
    sim.run_all()
    assert sim.fire("a") == [] and sim.fire("b") == []
    assert sim.statuses() == {"t_x#0": "finished"}
    assert sim.ready == ["t_x#0"]


def test_refiring_before_the_run_keeps_the_first_kwargs_per_instance() -> None:
    """As in the original: a trigger applies once to an instance."""
    sim = Sim({"t_x": {"after": ["a", "b"], "run": "x"}})
    sim.fire("a", {"v": 1})
    sim.fire("a", {"v": 2})
    sim.fire("b")
    assert sim["t_x#0"].kwargs["a"] == {"v": 1}


def test_cascade_fires_the_task_name_with_a_mapping_result_as_kwargs() -> None:
    sim = Sim(SURVEY)
    sim.fire("sessionFinalized")
    sim.fire("startSession", {"survey": 1})
    sim.fire("observationsReceived", {"n": 2})
    sim.start("t_createApplicant#0")
    ready = sim.finish("t_createApplicant#0", {"applicant_id": 7})
    assert ready == ["t_computeScore#0"]
    assert sim["t_computeScore#0"].kwargs == {"t_createApplicant": {"applicant_id": 7}, "sessionFinalized": {}}


@pytest.mark.parametrize("result", [42, "text", None, [1, 2], True])
def test_cascade_kwargs_are_empty_for_a_non_mapping_result(result: object) -> None:
    sim = Sim(SURVEY)
    for name in ("startSession", "observationsReceived", "sessionFinalized"):
        sim.fire(name)
    sim.start("t_createApplicant#0")
    sim.finish("t_createApplicant#0", result)
    assert sim["t_createApplicant#0"].result == result
    assert sim["t_computeScore#0"].kwargs["t_createApplicant"] == {}


def test_a_second_finish_of_the_same_instance_does_not_cascade_again() -> None:
    sim = Sim(SURVEY)
    for name in ("startSession", "observationsReceived", "sessionFinalized"):
        sim.fire(name)
    sim.start("t_createApplicant#0")
    first = engine.finish(sim.state, sim.configs, "t_createApplicant#0", {"id": 1}, 1.0)
    sim._apply(first)
    again = engine.finish(sim.state, sim.configs, "t_createApplicant#0", {"id": 1}, 2.0)
    assert first.fired == ["t_createApplicant"] and first.ready == ["t_computeScore#0"]
    assert again.empty and again.fired == [] and again.ready == []


def test_failure_records_the_error_and_does_not_cascade() -> None:
    sim = Sim(SURVEY)
    for name in ("startSession", "observationsReceived", "sessionFinalized"):
        sim.fire(name)
    sim.start("t_createApplicant#0")
    sim.fail("t_createApplicant#0")
    assert sim.statuses() == {"t_computeScore#0": "unstarted", "t_createApplicant#0": "failed"}
    assert "t_createApplicant" not in sim.state.triggers
    assert sim["t_createApplicant#0"].metadata["exc_type"] == "ValueError"


def test_operations_do_not_mutate_their_input_snapshot() -> None:
    sim = Sim(SURVEY)
    sim.fire("startSession")
    before = sim.state.copy()
    engine.fire(sim.state, sim.configs, "observationsReceived", {"x": 1}, 5.0)
    assert sim.state == before


def test_needs_for_fire_names_only_the_watching_tasks() -> None:
    sim = Sim({**SURVEY, "t_other": {"after": ["zzz"], "run": "o"}})
    needs = engine.needs_for_fire(sim.configs, "sessionFinalized")
    assert needs.tasks == {"t_computeScore"}
    assert needs.triggers == {"sessionFinalized", "t_createApplicant"}


@pytest.mark.parametrize("status", [Status.UNSTARTED, Status.FINISHED, Status.FAILED])
def test_illegal_transitions_are_refused(status: Status) -> None:
    sim = Sim({"t_x": {"after": ["a", "b"], "run": "x"}})
    sim.fire("a")
    sim.state.instances["t_x#0"].status = status
    with pytest.raises(IllegalTransition, match="t_x#0"):
        engine.start(sim.state, "t_x#0", 1.0)


def test_unknown_instance_is_a_typed_error() -> None:
    with pytest.raises(UnknownInstance, match="t_nope#0"):
        engine.start(Snapshot(), "t_nope#0", 1.0)
