"""The cookbook examples, run on the eager runner."""

from __future__ import annotations

from celery_triggers import Status
from examples.finalize.app import make_app


def test_session_finalizes_once_every_other_task_is_resolved() -> None:
    app = make_app()
    session = app.triggers.session("q")
    session.fire("pageReceived", {"answers": [1, 2]})
    session.fire("pageReceived", {"answers": [3]})
    assert session.latest_kwargs("sessionFinalized") is None, "responses are waiting for the subject"
    session.fire("firstPageReceived", {"subject": "S-1"})

    instances = session.instances
    assert {n: i.status for n, i in instances.items()} == {
        "t_importResponses#0": Status.FINISHED,
        "t_importResponses#1": Status.FINISHED,
        "t_importSubject#0": Status.FINISHED,
        "t_markComplete#0": Status.FINISHED,
    }
    finished_last = max(instances.values(), key=lambda i: (i.metadata["finished_at"], i.task == "t_markComplete"))
    assert finished_last.name == "t_markComplete#0"
    assert instances["t_markComplete#0"].kwargs == {"sessionFinalized": {}}
    session.fire("pageReceived", {"answers": []})
    assert [i.name for i in session.instances_of_task("t_markComplete")] == ["t_markComplete#0"], "finalized once"


def test_a_failed_task_keeps_the_session_open() -> None:
    app = make_app()
    session = app.triggers.session("q")
    session.fire("pageReceived", {"wrong": "shape"})  # import_responses raises KeyError
    session.fire("firstPageReceived", {"subject": "S-1"})
    assert session.instances["t_importResponses#0"].status is Status.FAILED
    assert "t_markComplete#0" not in session.instances
    session.skip_failed_instance("t_importResponses#0")
    assert session.latest_kwargs("sessionFinalized") is None, "a skip fires nothing unless it cascades"
    session.fire("pageReceived", {"answers": [1]})
    assert session.instances["t_markComplete#0"].status is Status.FINISHED
