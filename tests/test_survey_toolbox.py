"""The survey example's own tests, written with the testing toolbox: once on
the eager runner, once on a real (in-process) Celery worker from Celery's
pytest fixtures (``celery_app``, ``celery_worker``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.worker import WorkController

from celery_triggers.testing import (
    assert_instance_finished,
    assert_instance_missing,
    assert_instance_unstarted,
    assert_unresolved_tasks,
    eager_triggers,
    wait_until_idle,
)
from examples.survey import proj

TRIGGERS = {
    "startSession": {"survey": "S-7"},
    "observationsReceived": {"answers": [2, 7]},
    "sessionFinalized": {},
}
APPLICANT = {"applicant_id": "A-S-7", "observations": 2}


@pytest.mark.parametrize("seed", range(3))
def test_survey_on_the_eager_runner(seed: int) -> None:
    with eager_triggers(proj.app) as app:
        session = app.triggers.session(f"eager-{seed}")
        order = list(TRIGGERS)
        random.Random(seed).shuffle(order)
        for name in order[:-1]:
            session.fire(name, TRIGGERS[name])
        assert_unresolved_tasks(session, ["t_createApplicant", "t_computeScore"])
        session.fire(order[-1], TRIGGERS[order[-1]])
        assert_instance_finished(session, "t_createApplicant#0", expected_result=APPLICANT)
        assert_instance_finished(session, "t_computeScore#0", expected_result={"applicant_id": "A-S-7", "score": 20})
        assert_unresolved_tasks(session, [])
    assert proj.app.conf.triggers_runner is None, "eager_triggers restored the app's settings"


def test_score_waits_for_the_session_to_be_finalized() -> None:
    with eager_triggers(proj.app) as app:
        session = app.triggers.session("waiting")
        session.fire("startSession", TRIGGERS["startSession"])
        session.fire("observationsReceived", TRIGGERS["observationsReceived"])
        assert_instance_finished(session, "t_createApplicant#0")
        assert_instance_unstarted(session, "t_computeScore#0")
        assert_instance_missing(session, "t_computeScore#1")


@pytest.fixture
def celery_app() -> Iterator[Celery]:
    """Celery's ``celery_worker`` fixture runs the survey app itself, on an
    in-memory broker, with memory storage shared by the test and the worker."""
    saved = {k: proj.app.conf.get(k) for k in ("broker_url", "broker_transport", "broker_transport_options")}
    # The worker polls the in-memory queue every 10 ms (kombu's default: every second).
    proj.app.conf.update(
        broker_url="memory://", broker_transport=None, broker_transport_options={"polling_interval": 0.01}
    )
    with eager_triggers(proj.app, runner="celery") as app:
        yield app
    proj.app.conf.update(saved)


@pytest.fixture
def celery_worker_parameters() -> dict[str, Any]:
    return {"perform_ping_check": False, "shutdown_timeout": 10.0}


@pytest.fixture
def celery_worker(celery_app: Celery, celery_worker: WorkController) -> Iterator[WorkController]:
    """Celery's own fixture, then Celery's ``shutdown`` command to that
    worker: on the in-memory broker, its loop notices the fixture's stop
    only after two two-second polls of the queue."""
    yield celery_worker
    celery_app.control.shutdown(destination=[celery_worker.hostname])


def test_survey_on_a_real_worker(celery_app: Celery, celery_worker: WorkController) -> None:
    session = celery_app.triggers.session("worker")
    for name in ("sessionFinalized", "observationsReceived", "startSession"):
        session.fire(name, TRIGGERS[name])
    instances = wait_until_idle(session, timeout=30)
    assert list(instances) == ["t_computeScore#0", "t_createApplicant#0"]
    assert_instance_finished(session, "t_createApplicant#0", expected_result=APPLICANT)
    score = assert_instance_finished(
        session, "t_computeScore#0", expected_result={"applicant_id": "A-S-7", "score": 20}
    )
    assert score.kwargs["t_createApplicant"] == APPLICANT
    assert score.metadata["hostname"], "ran on the worker"
