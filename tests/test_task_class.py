"""Class-based trigger tasks (``TriggerTask``), the original framework's way,
on the eager runner; tests/test_worker.py runs the same on a real worker."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from celery_triggers import KwargsValidationError, MaxRetriesExceeded, Status, TaskContext, TriggerTask
from celery_triggers.testing import assert_instance_failed, assert_instance_finished

from .classy_tasks import CONFIGS, TASKS
from .conftest import make_app


@pytest.fixture
def app() -> Celery:
    app = make_app()
    for cls in TASKS:  # a subclass per app: Celery binds a task class to the app that registers it
        app.register_task(type(cls.__name__, (cls,), {})())
    app.triggers.configure({**CONFIGS, "t_next": {"after": ["t_importSubject"], "run": "classes.decorated"}})

    @app.task(base=TriggerTask, bind=True, shared=False, name="classes.decorated")
    def decorated(self: TriggerTask, context: TaskContext) -> dict[str, Any]:
        return {"seen": context.trigger_kwargs["t_importSubject"]}

    return app


def test_a_class_based_task_filters_its_kwargs_and_cascades(app: Celery) -> None:
    session = app.triggers.session("s")
    session.fire("firstPageReceived", {"responses": {"q1": 3}, "page": "7"})
    assert_instance_finished(session, "t_importSubject#0", expected_result={"subjectId": 42, "page": 7})
    assert_instance_finished(session, "t_next#0", expected_result={"seen": {"subjectId": 42, "page": 7}})


def test_invalid_kwargs_fail_the_instance_naming_every_field(app: Celery) -> None:
    session = app.triggers.session("s")
    session.fire("firstPageReceived", {"responses": [1], "page": "x"})
    failed = assert_instance_failed(session, "t_importSubject#0", KwargsValidationError)
    message = failed.metadata["exc_message"]
    assert "firstPageReceived.responses: list is not valid (allowed types: dict)" in message
    assert "firstPageReceived.page: Numeric value expected" in message
    assert "t_next#0" not in session.instances


def test_self_retry_replays_until_it_finishes(app: Celery) -> None:
    session = app.triggers.session("s")
    session.fire("retry")
    instances = session.instances
    assert [i.status for i in instances.values()] == [Status.REPLAYED, Status.REPLAYED, Status.FINISHED]
    assert instances["t_retry#2"].result == {"count": 2}
    assert instances["t_retry#0"].metadata["why"] == "not yet"
    assert instances["t_retry#1"].metadata["parent"] == "t_retry#0"


def test_retrying_past_max_retries_fails_with_max_retries_exceeded(app: Celery) -> None:
    session = app.triggers.session("s")
    session.fire("giveUp")
    assert [i.status.value for i in session.instances.values()] == ["replayed", "replayed", "failed"]
    assert session.instances["t_giveUp#0"].metadata["exc_type"] == "ConnectionError"
    assert_instance_failed(session, "t_giveUp#2", MaxRetriesExceeded)
    failed = assert_instance_failed(session, "t_giveUp#2", "celery_triggers.core.errors.MaxRetriesExceeded")
    assert (
        failed.metadata["exc_message"] == "t_giveUp#2: gave up after 2 retries (max_retries=2): ConnectionError: down"
    )


def test_self_skip_marks_it_skipped_with_its_kwargs_in_the_metadata(app: Celery) -> None:
    session = app.triggers.session("s")
    session.fire("skip", {"a": 1})
    skipped = session.instances["t_skip#0"]
    assert skipped.status is Status.SKIPPED
    assert skipped.metadata["kwargs"] == {"skip": {"a": 1}}
    assert skipped.metadata["skippedBecause"] == "Needs more cowbell."


def test_without_the_filters_extra_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from celery_triggers.session.validation import filter_kwargs

    monkeypatch.setitem(sys.modules, "filters", None)
    with pytest.raises(ImportError, match=r"pip install 'celery-triggers\[filters\]'"):
        filter_kwargs("t_x#0", {}, {"a": {}})


def test_retry_keeps_celerys_signature_and_refuses_mixed_forms(app: Celery) -> None:
    import inspect

    from celery import Task

    celery_params = list(inspect.signature(Task.retry).parameters)[:-1]  # up to **options
    assert list(inspect.signature(TriggerTask.retry).parameters)[: len(celery_params)] == celery_params
    task = app.tasks["classes.self_retrying"]
    with pytest.raises(TypeError, match="cannot be mixed with Celery's retry arguments"):
        task.retry(cooldown=1, countdown=1)


def test_max_retries_exceeded_without_an_error_says_so_plainly(app: Celery) -> None:
    task = app.tasks["classes.self_retrying"]  # max_retries=2
    context = TaskContext("s", "t_retry#2", {}, app.triggers.session("s"), task=task, retries=2)
    with pytest.raises(MaxRetriesExceeded) as info:
        context.retry()
    assert str(info.value) == "t_retry#2: gave up after 2 retries (max_retries=2)"
