"""The original framework's scenarios for each directive, on the pure engine."""

from __future__ import annotations

import pytest

from celery_triggers.core import engine

from .sim import Sim

IMPORT = {
    "t_importSubject": {"after": ["firstPageReceived"], "run": "subject"},
    "t_importResponses": {"after": ["t_importSubject"], "andEvery": "pageReceived", "run": "responses"},
}


class TestOneShot:
    def test_runs_at_most_once_per_session(self) -> None:
        sim = Sim({"t_x": {"after": ["a"], "run": "x"}})
        sim.fire("a")
        sim.run_all()
        sim.fire("a")
        sim.fire("a")
        assert sim.statuses() == {"t_x#0": "finished"}


class TestAndEvery:
    def test_each_firing_makes_one_instance_with_its_own_kwargs(self) -> None:
        sim = Sim(IMPORT)
        sim.fire("firstPageReceived", {"page": 0})
        sim.run_all()  # t_importSubject finishes and cascades
        assert sim.fire("pageReceived", {"page": 1}) == ["t_importResponses#0"]
        assert sim.fire("pageReceived", {"page": 2}) == ["t_importResponses#1"]
        assert sim["t_importResponses#0"].kwargs == {"pageReceived": {"page": 1}, "t_importSubject": {}}
        assert sim["t_importResponses#1"].kwargs == {"pageReceived": {"page": 2}, "t_importSubject": {}}

    def test_deferred_kwargs_instances_wait_and_pick_up_kwargs(self) -> None:
        sim = Sim(IMPORT)
        sim.fire("pageReceived", {"page": 1})
        sim.fire("pageReceived", {"page": 2})
        assert sim.statuses() == {"t_importResponses#0": "unstarted", "t_importResponses#1": "unstarted"}
        sim.fire("firstPageReceived")
        sim.start("t_importSubject#0")
        ready = sim.finish("t_importSubject#0", {"subject_id": 9})
        assert ready == ["t_importResponses#0", "t_importResponses#1"]
        for n, page in ((0, 1), (1, 2)):
            assert sim[f"t_importResponses#{n}"].kwargs == {
                "pageReceived": {"page": page},
                "t_importSubject": {"subject_id": 9},
            }

    def test_only_one_new_instance_per_firing_with_complex_after(self) -> None:
        sim = Sim({"t_x": {"after": ["a", "b"], "andEvery": "p", "run": "x"}})
        sim.fire("p", {"n": 0})
        sim.fire("a")
        sim.fire("p", {"n": 1})
        assert len(sim.of("t_x")) == 2
        assert sim.fire("b") == ["t_x#0", "t_x#1"]
        assert sim.fire("p", {"n": 2}) == ["t_x#2"]
        assert sim.fire("a") == [] and len(sim.of("t_x")) == 3

    def test_cascades_out_of_and_into_and_every_tasks(self) -> None:
        sim = Sim(
            {
                "t_page": {"after": [], "andEvery": "pageReceived", "run": "page"},
                "t_pageSummary": {"after": ["start"], "andEvery": "t_page", "run": "summary"},
                "t_firstPageDone": {"after": ["t_page"], "run": "once"},
            }
        )
        sim.fire("start")
        for page in range(3):
            sim.fire("pageReceived", {"page": page})
        sim.run_all()
        assert [i.status.value for i in sim.of("t_page")] == ["finished"] * 3
        assert [i.status.value for i in sim.of("t_pageSummary")] == ["finished"] * 3
        assert [i.name for i in sim.of("t_firstPageDone")] == ["t_firstPageDone#0"], "one-shot after an and_every"


class TestUnless:
    def test_abandons_before_start_including_later_instances(self) -> None:
        sim = Sim({"t_x": {"after": ["a", "b"], "unless": ["embedded"], "run": "x"}})
        sim.fire("embedded")
        sim.fire("a")
        assert sim.fire("b") == []
        assert sim.statuses() == {"t_x#0": "abandoned"}

    def test_abandons_after_partial_start(self) -> None:
        sim = Sim({"t_x": {"after": ["a", "b"], "unless": ["embedded"], "run": "x"}})
        sim.fire("a")
        assert sim.statuses() == {"t_x#0": "unstarted"}
        sim.fire("embedded")
        assert sim.fire("b") == []
        assert sim.statuses() == {"t_x#0": "abandoned"}
        assert sim.ready == []

    def test_needs_every_unless_trigger(self) -> None:
        sim = Sim({"t_x": {"after": ["a", "b"], "unless": ["x", "y"], "run": "x"}})
        sim.fire("a")
        sim.fire("x")
        assert sim.statuses() == {"t_x#0": "unstarted"}
        sim.fire("y")
        assert sim.statuses() == {"t_x#0": "abandoned"}

    def test_with_and_every_queued_or_running_instances_are_not_recalled(self) -> None:
        sim = Sim({"t_x": {"after": ["a"], "andEvery": "p", "unless": ["stop"], "run": "x"}})
        sim.fire("a")
        sim.fire("p")
        sim.fire("p")
        sim.start("t_x#0")
        sim.fire("a")
        sim2_unstarted = Sim({"t_y": {"after": ["a"], "andEvery": "p", "unless": ["stop"], "run": "y"}})
        sim2_unstarted.fire("p")
        sim2_unstarted.fire("p")
        sim.fire("stop")
        sim2_unstarted.fire("stop")
        assert sim.statuses() == {"t_x#0": "running", "t_x#1": "scheduled"}
        assert sim2_unstarted.statuses() == {"t_y#0": "abandoned", "t_y#1": "abandoned"}
        sim2_unstarted.fire("p")
        assert sim2_unstarted.fire("a") == []
        assert sim2_unstarted.statuses()["t_y#2"] == "abandoned"

    def test_a_replay_clone_runs_even_after_unless_as_in_the_original(self) -> None:
        """The original schedules a replay's clone whatever ``unless`` says:
        replaying is an operator's explicit decision."""
        sim = Sim({"t_x": {"after": ["a"], "unless": ["stop"], "run": "x"}})
        sim.fire("a")
        sim.start("t_x#0")
        sim.fail("t_x#0")
        sim.fire("stop")
        assert sim.replay("t_x#0") == ["t_x#1"]
        assert sim.statuses() == {"t_x#0": "replayed", "t_x#1": "scheduled"}


class TestWithParams:
    def test_params_are_merged_into_the_kwargs_the_task_receives(self) -> None:
        sim = Sim(
            {
                "t_score": {
                    "after": ["done"],
                    "withParams": {"scoring": {"model": "Psych 01"}, "done": {"v": 2}},
                    "run": "s",
                }
            }
        )
        sim.fire("done", {"v": 1, "w": 1})
        received = engine.task_kwargs(sim.configs["t_score"], sim["t_score#0"])
        assert received == {"done": {"v": 1, "w": 1}, "scoring": {"model": "Psych 01"}}, "fired kwargs win"
        assert sim["t_score#0"].kwargs == {"done": {"v": 1, "w": 1}}, "stored kwargs stay as fired"


class TestReplayAndSkip:
    @pytest.fixture
    def failed(self) -> Sim:
        sim = Sim({"t_x": {"after": ["a"], "run": "x"}, "t_next": {"after": ["t_x"], "run": "n"}})
        sim.fire("a", {"v": 1})
        sim.start("t_x#0")
        sim.fail("t_x#0")
        return sim

    def test_replay_keeps_kwargs_and_links_the_clone(self, failed: Sim) -> None:
        assert failed.replay("t_x#0") == ["t_x#1"]
        assert failed["t_x#1"].kwargs == {"a": {"v": 1}}
        assert failed["t_x#1"].metadata["parent"] == "t_x#0"
        assert failed["t_x#0"].metadata["replayed_by"] == "t_x#1"
        assert failed.statuses() == {"t_x#0": "replayed", "t_x#1": "scheduled"}

    def test_replay_with_replacement_kwargs(self, failed: Sim) -> None:
        failed.replay("t_x#0", {"a": {"v": 2}})
        assert failed["t_x#1"].kwargs == {"a": {"v": 2}}

    def test_skip_without_cascade_resolves_only(self, failed: Sim) -> None:
        assert failed.skip("t_x#0") == []
        assert failed.statuses() == {"t_x#0": "skipped"}

    def test_skip_with_cascade_fires_the_simulated_result(self, failed: Sim) -> None:
        assert failed.skip("t_x#0", cascade=True, result={"fake": 1}) == ["t_next#0"]
        assert failed["t_next#0"].kwargs == {"t_x": {"fake": 1}}
