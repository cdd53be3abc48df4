"""The task context on the eager runner: keyword injection, validated
kwargs, logging with context, retries, self-skip."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from celery import Celery
from pydantic import BaseModel

from celery_triggers import (
    KwargsValidationError,
    Status,
    TaskContext,
    current_context,
    trigger_task,
    with_context,
)

from .conftest import make_app


class Page(BaseModel):
    page: int
    answers: list[int]


class Subject(BaseModel):
    name: str


def test_the_context_keyword_and_firing_from_inside_a_task() -> None:
    app = make_app()
    seen: list[Any] = []

    @trigger_task(after=["a"])
    @app.task(shared=False, name="tests.ctx")
    def ctx(context: TaskContext) -> None:
        seen.append((context.session_uid, context.instance_name, context.trigger_kwargs))
        assert context is current_context()
        context.manager.fire("fromInside", {"by": context.instance_name})

    @trigger_task(after=["fromInside"])
    @app.task(shared=False, name="tests.inner")
    def inner(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        return dict(trigger_kwargs["fromInside"])

    session = app.triggers.session("s")
    session.fire("a", {"x": 1})
    assert seen == [("s", "t_ctx#0", {"a": {"x": 1}})]
    assert session.instances["t_inner#0"].result == {"by": "t_ctx#0"}


def validating_app() -> Celery:
    app = make_app()

    @trigger_task(after=["firstPageReceived", "subjectReceived"])
    @app.task(shared=False, name="tests.validate")
    def validate(context: TaskContext) -> dict[str, Any]:
        valid = context.validate_kwargs({"firstPageReceived": Page, "subjectReceived": Subject})
        return {"total": sum(valid["firstPageReceived"].answers), "page": valid["firstPageReceived"].page}

    return app


def test_validate_kwargs_converts_valid_kwargs() -> None:
    app = validating_app()
    session = app.triggers.session("s")
    session.fire("subjectReceived", {"name": "Ada"})
    session.fire("firstPageReceived", {"page": "1", "answers": [1, "2", 3]})
    assert session.instances["t_validate#0"].result == {"total": 6, "page": 1}


def test_validate_kwargs_reports_every_problem_at_once() -> None:
    app = make_app()

    @trigger_task(after=["firstPageReceived", "subjectReceived"])
    @app.task(shared=False, name="tests.validate_all")
    def validate_all(context: TaskContext) -> None:
        context.validate_kwargs({"firstPageReceived": Page, "subjectReceived": Subject, "nope": Subject})

    session = app.triggers.session("s")
    session.fire("subjectReceived", {})
    session.fire("firstPageReceived", {"page": "one", "answers": [1, "x"]})
    failed = session.instances["t_validate_all#0"]
    assert failed.status is Status.FAILED
    assert failed.metadata["exc_type"] == "KwargsValidationError"
    message = failed.metadata["exc_message"]
    assert "invalid trigger kwargs (4)" in message
    assert "firstPageReceived.page: Input should be a valid integer" in message
    assert "firstPageReceived.answers.1: Input should be a valid integer" in message
    assert "subjectReceived.name: Field required" in message
    assert "nope: not a trigger of this task" in message


def test_validation_error_lists_structured_errors() -> None:
    from celery_triggers.session.validation import validate_kwargs

    with pytest.raises(KwargsValidationError) as info:
        validate_kwargs("t_x#0", {"a": {"page": "z"}}, {"a": Page})
    assert info.value.errors == [
        ("a", "page", "Input should be a valid integer, unable to parse string as an integer"),
        ("a", "answers", "Field required"),
    ]


def logging_app() -> Celery:
    app = make_app()

    @trigger_task(after=["a"])
    @app.task(shared=False, name="tests.logs")
    def logs(context: TaskContext, trigger_kwargs: dict[str, Any]) -> str:
        with context.get_logger_context({"survey": "S-1"}) as log:
            log.warning("odd answer", context={"answer": 42})
            log.info("carrying on")
            if trigger_kwargs["a"].get("explode"):
                raise with_context(ValueError("bad page"), {"page": 3})
        return "done"

    return app


def test_logger_context_tracks_the_highest_level_and_attaches_context(caplog: pytest.LogCaptureFixture) -> None:
    app = logging_app()
    session = app.triggers.session("logs")
    with caplog.at_level(logging.INFO, logger="celery_triggers.tasks"):
        session.fire("a")
    instance = session.instances["t_logs#0"]
    assert instance.status is Status.FINISHED
    assert (instance.metadata["log_level"], instance.metadata["log_level_name"]) == (logging.WARNING, "WARNING")
    warning = next(r for r in caplog.records if r.getMessage() == "odd answer")
    assert warning.session_uid == "logs" and warning.instance == "t_logs#0" and warning.survey == "S-1"  # type: ignore[attr-defined]
    assert warning.context == {"answer": 42}  # type: ignore[attr-defined]
    assert [i.name for i in session.get_instances_with_unresolved_logs()] == ["t_logs#0"]
    session.mark_instance_logs_resolved("t_logs#0")
    assert session.get_instances_with_unresolved_logs() == []


def test_an_exception_leaving_the_block_is_logged_with_its_context(caplog: pytest.LogCaptureFixture) -> None:
    app = logging_app()
    session = app.triggers.session("boom")
    with caplog.at_level(logging.INFO, logger="celery_triggers.tasks"):
        session.fire("a", {"explode": True})
    instance = session.instances["t_logs#0"]
    assert instance.status is Status.FAILED
    assert instance.metadata["log_level_name"] == "ERROR"
    record = next(r for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("celery_triggers"))
    assert record.context == {"page": 3}  # type: ignore[attr-defined]
    assert record.exc_info is not None and "bad page" in record.getMessage()


def retry_app(max_retries: int | None = 2) -> tuple[Celery, list[Any]]:
    app = make_app()
    calls: list[Any] = []

    @trigger_task(after=["a"])
    @app.task(shared=False, name="tests.retrying", max_retries=max_retries)
    def retrying(context: TaskContext, trigger_kwargs: dict[str, Any]) -> str:
        calls.append((context.instance_name, trigger_kwargs["a"]))
        if trigger_kwargs["a"].get("ok"):
            return "ok"
        raise context.retry(
            exc=ConnectionError("flaky"), cooldown=10, replacement_kwargs={"a": {"attempt": len(calls)}}
        )

    return app, calls


def test_context_retry_replays_until_max_retries_then_fails() -> None:
    app, calls = retry_app(max_retries=2)
    session = app.triggers.session("r")
    session.fire("a", {"attempt": 0})
    statuses = {n: i.status.value for n, i in session.instances.items()}
    assert statuses == {"t_retrying#0": "replayed", "t_retrying#1": "replayed", "t_retrying#2": "failed"}
    assert calls == [
        ("t_retrying#0", {"attempt": 0}),
        ("t_retrying#1", {"attempt": 1}),
        ("t_retrying#2", {"attempt": 2}),
    ]
    one = session.instances["t_retrying#1"]
    assert one.metadata["parent"] == "t_retrying#0" and one.metadata["retries"] == 1
    assert one.metadata["countdown"] == 10
    first = session.instances["t_retrying#0"]
    assert first.metadata["exc_type"] == "ConnectionError" and first.metadata["exc_message"] == "flaky"
    last = session.instances["t_retrying#2"]
    assert last.metadata["exc_type"] == "MaxRetriesExceeded"
    assert (
        last.metadata["exc_message"] == "t_retrying#2: gave up after 2 retries (max_retries=2): ConnectionError: flaky"
    )
    assert "ConnectionError: flaky" in last.metadata["traceback"], "the cause is kept"


def test_context_retry_then_success_cascades_once() -> None:
    app, _calls = retry_app()

    @trigger_task(after=["t_retrying"])
    @app.task(shared=False, name="tests.after_retry")
    def after_retry(trigger_kwargs: dict[str, Any]) -> Any:
        return trigger_kwargs

    session = app.triggers.session("r")
    session.fire("a", {"ok": False})
    # The clone received the replacement kwargs {"attempt": 1} (no "ok"), so it
    # retried again; replay the failed last one with kwargs that succeed.
    session.replay_failed_instance("t_retrying#2", {"a": {"ok": True}})
    assert session.instances["t_retrying#3"].status is Status.FINISHED
    assert [i.name for i in session.instances_of_task("t_after_retry")] == ["t_after_retry#0"]


def test_celery_self_retry_keeps_one_instance_and_counts_retries() -> None:
    app = make_app()
    attempts: list[int] = []

    @trigger_task(after=["a"])
    @app.task(shared=False, name="tests.self_retry", bind=True, max_retries=3)
    def self_retry(self: Any) -> str:
        attempts.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(exc=ValueError("not yet"), countdown=0)
        return "third time"

    @trigger_task(after=["a"])
    @app.task(shared=False, name="tests.auto_retry", autoretry_for=(KeyError,), max_retries=1, retry_backoff=False)
    def auto_retry() -> None:
        raise KeyError("always")

    session = app.triggers.session("s")
    session.fire("a")
    instances = session.instances
    assert attempts == [0, 1, 2]
    assert list(instances) == ["t_auto_retry#0", "t_self_retry#0"], "Celery retries reuse the instance"
    assert instances["t_self_retry#0"].status is Status.FINISHED
    assert instances["t_self_retry#0"].result == "third time"
    assert instances["t_self_retry#0"].metadata["celery_retries"] == 2
    assert instances["t_self_retry#0"].metadata["attempts"] == 3
    assert instances["t_auto_retry#0"].status is Status.FAILED
    assert instances["t_auto_retry#0"].metadata["exc_type"] == "KeyError"
    assert instances["t_auto_retry#0"].metadata["celery_retries"] == 1


def test_a_task_can_skip_itself_with_or_without_cascade() -> None:
    app = make_app()

    @trigger_task(after=["a"])
    @app.task(shared=False, name="tests.skipper")
    def skipper(context: TaskContext, trigger_kwargs: dict[str, Any]) -> str:
        cascade = trigger_kwargs["a"]["cascade"]
        raise context.skip(cascade=cascade, result={"skipped_by": "task"} if cascade else None)

    @trigger_task(after=["t_skipper"])
    @app.task(shared=False, name="tests.after_skip")
    def after_skip(trigger_kwargs: dict[str, Any]) -> Any:
        return trigger_kwargs["t_skipper"]

    quiet, loud = app.triggers.session("quiet"), app.triggers.session("loud")
    quiet.fire("a", {"cascade": False})
    loud.fire("a", {"cascade": True})
    assert {n: i.status.value for n, i in quiet.instances.items()} == {"t_skipper#0": "skipped"}
    assert loud.instances["t_skipper#0"].status is Status.SKIPPED
    assert loud.instances["t_after_skip#0"].result == {"skipped_by": "task"}


def test_our_errors_survive_celery_exception_reconstruction() -> None:
    """Celery rebuilds a task's exception through pickle before task_failure;
    our errors must keep their type and fields (pickle is used here only as
    Celery uses it, never for storage)."""
    import pickle

    from celery_triggers import ConfigurationError, DispatchError, MaxRetriesExceeded

    for exc in (
        KwargsValidationError("t_x#0", [("a", "page", "bad")]),
        DispatchError("refused", ["t_x#0"]),
        ConfigurationError("bad", task="t_x", directive="after"),
        MaxRetriesExceeded("gave up"),
    ):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc)
    assert pickle.loads(pickle.dumps(KwargsValidationError("t", [("a", "", "m")]))).errors == [("a", "", "m")]


def test_the_recorded_log_level_does_not_depend_on_the_process_logging_settings() -> None:
    """A WARNING logged while the logger is set to ERROR is still the
    instance's log level."""
    import logging

    from celery_triggers.session.logs import TriggerLoggerAdapter

    logger = logging.getLogger("celery_triggers.test.silenced")
    logger.setLevel(logging.ERROR)
    adapter = TriggerLoggerAdapter(logger, {})
    adapter.info("quiet")
    adapter.warning("not emitted here")
    assert adapter.max_level == logging.WARNING
