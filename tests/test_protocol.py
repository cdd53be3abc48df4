"""The worker protocol in-process (``Task.apply``, as the eager runner and a
worker's tracer call it): tokens, untracked starts, storage aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery_triggers import Status, TriggerManager, trigger_task

from .conftest import make_app


def test_untracked_starts_write_nothing_and_go_scheduled_to_finished() -> None:
    app = make_app(triggers_track_started=False)
    seen: list[Any] = []

    @trigger_task(after=["go"], name="t_x")
    @app.task(shared=False, name="p.x")
    def x(trigger_kwargs: dict[str, Any]) -> int:
        seen.append(trigger_kwargs)
        return 1

    session = app.triggers.session("u")
    changes: list[tuple[str, str]] = []
    from celery_triggers import instance_status_changed

    def record(sender: Any, instance: str, old: Any, new: Any, **_: Any) -> None:
        changes.append((str(old), str(new)))

    instance_status_changed.connect(record, weak=False, dispatch_uid="test-untracked")
    try:
        session.fire("go", {"n": 1})
    finally:
        instance_status_changed.disconnect(record, dispatch_uid="test-untracked")
    instance = session.instances["t_x#0"]
    assert instance.status is Status.FINISHED and seen == [{"go": {"n": 1}}]
    assert "started_at" not in instance.metadata and "attempts" not in instance.metadata
    assert changes == [("None", "unstarted"), ("unstarted", "scheduled"), ("scheduled", "finished")]


def test_a_second_delivery_of_a_finished_instance_does_not_run_the_body() -> None:
    app = make_app()
    calls: list[int] = []

    @trigger_task(after=["go"], name="t_x")
    @app.task(shared=False, name="p.x")
    def x() -> int:
        calls.append(1)
        return len(calls)

    session = app.triggers.session("u")
    session.fire("go")
    instance = session.instances["t_x#0"]
    headers = {"triggers_session": "u", "triggers_instance": "t_x#0"}
    result = app.tasks["p.x"].apply(headers=headers, task_id=instance.metadata["task_id"])
    assert calls == [1], "the redelivered message ran nothing"
    assert result.state == "IGNORED"
    assert session.instances["t_x#0"].result == 1


def test_a_session_in_an_aliased_storage_runs_through_its_alias(tmp_path: Path) -> None:
    legacy = f"sqlite:///{tmp_path / 'legacy.sqlite3'}"
    app = make_app(triggers_storages={"legacy": legacy})

    @trigger_task(after=["go"], name="t_x")
    @app.task(shared=False, name="p.x")
    def x(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        return trigger_kwargs["go"]

    from celery_triggers import resolve_storage

    backend = resolve_storage(legacy)  # built by hand, as the seed's form does
    manager = TriggerManager(backend.bind("old"), app=app)
    manager.fire("go", {"a": 1})
    assert manager.instances["t_x#0"].result == {"a": 1}
    assert app.triggers.alias_of(backend) == "legacy"
    assert app.triggers.session("old", "legacy").instances["t_x#0"].status is Status.FINISHED
