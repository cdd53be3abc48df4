"""The worker protocol in-process (``Task.apply``, as the eager runner and a
worker's tracer call it): tokens, untracked starts, storage aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
        return dict(trigger_kwargs["go"])

    from celery_triggers import resolve_storage

    backend = resolve_storage(legacy)  # built by hand, as the seed's form does
    manager = TriggerManager(backend.bind("old"), app=app)
    manager.fire("go", {"a": 1})
    assert manager.instances["t_x#0"].result == {"a": 1}
    assert app.triggers.alias_of(backend) == "legacy"
    assert app.triggers.session("old", "legacy").instances["t_x#0"].status is Status.FINISHED


def _stuck(app: Any, uid: str) -> tuple[TriggerManager, str]:
    """A session whose t_x#0 a worker started and then vanished."""
    session = app.triggers.session(uid)
    session.fire("go", {"n": 1})
    instance = session.instances["t_x#0"]
    token = instance.metadata["task_id"]
    session.start_instance("t_x#0", token, hostname="gone")
    return session, token


def _recovery_app(tmp_path: Path, **conf: Any) -> Any:
    # Its messages go to a queue of its own: kombu's memory transport is shared by
    # the whole process, and no worker should ever take them.
    queue = f"recovery-{tmp_path.name}"
    app = make_app(storage=f"sqlite:///{tmp_path / 's.sqlite3'}", runner="celery", task_default_queue=queue, **conf)
    app.triggers.configure({"t_x": {"after": ["go"], "run": "p.x"}, "t_y": {"after": ["t_x"], "run": "p.y"}})
    return app


def test_recover_finishes_from_the_result_backend_and_cascades(tmp_path: Path, redis_server: Any) -> None:
    app = _recovery_app(tmp_path, result_backend=redis_server.url.replace("/0", "/9"))
    session, token = _stuck(app, "rb")
    app.backend.store_result(token, {"score": 7}, "SUCCESS")
    failed, failed_token = _stuck(app, "rb-failed")
    app.backend.mark_as_failure(failed_token, ValueError("bad row"), traceback="Traceback ...\nValueError: bad row")

    dry = app.triggers.recover(["rb", "rb-failed"], older_than=0, dry_run=True)
    assert [(a.instance, a.action) for a in dry] == [("t_x#0", "finished"), ("t_x#0", "failed")]
    assert session.instances["t_x#0"].status is Status.RUNNING, "a dry run changes nothing"

    actions = app.triggers.recover(["rb", "rb-failed"], older_than=0)
    assert [str(a) for a in actions] == [
        "rb t_x#0 (running): finished, the result backend holds its result",
        "rb-failed t_x#0 (running): failed, the result backend recorded ValueError",
    ]
    instances = session.instances
    assert instances["t_x#0"].status is Status.FINISHED and instances["t_x#0"].result == {"score": 7}
    assert instances["t_y#0"].status is Status.SCHEDULED, "the cascade happened"
    bad = failed.instances["t_x#0"]
    assert bad.status is Status.FAILED and bad.metadata["exc_message"] == "bad row"
    # Idempotent: a second sweep finds nothing stuck but the cascaded message, now younger.
    again = app.triggers.recover(["rb"], older_than=60)
    assert [(a.instance, a.action) for a in again] == [("t_y#0", "skipped")]
    assert "younger than --older-than 60" in again[0].reason


def test_recover_without_a_result_backend_and_the_sweep_lease(tmp_path: Path) -> None:
    from celery_triggers.worker.sweeper import take_lock as _take_lease

    app = _recovery_app(tmp_path)
    session, _ = _stuck(app, "nb")
    other = app.triggers.session("nb-2")
    other.fire("go")
    lost = other.instances["t_x#0"].metadata["task_id"]
    actions = {a.session: a for a in app.triggers.recover(older_than=0)}
    assert actions["nb"].action == "failed" and "WorkerLost" in actions["nb"].reason
    assert session.instances["t_x#0"].metadata["exc_type"] == "WorkerLost"
    assert actions["nb-2"].action == "redispatched"
    assert other.instances["t_x#0"].metadata["task_id"] != lost, "a new token: the lost message is stale"
    assert session.replay_failed_instance("t_x#0").status is Status.SCHEDULED

    assert _take_lease(app.triggers, "w1", 30)
    assert not _take_lease(app.triggers, "w2", 30), "one sweeper at a time"
    assert _take_lease(app.triggers, "w1", 30), "the holder renews"
    assert _take_lease(app.triggers, "w3", -1) is False
    assert all(not a.session.startswith("celery-triggers:") for a in app.triggers.recover(older_than=0))


def test_a_plain_task_registered_after_finalize_still_runs_through_the_protocol() -> None:
    app = make_app()
    app.triggers.configure({"t_y": {"after": ["go"], "run": "p.late"}})
    assert app.tasks  # the app is finalized

    @app.task(shared=False, name="p.late")
    def late(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        return trigger_kwargs

    session = app.triggers.session("late")
    session.fire("go", {"a": 1})
    instance = session.instances["t_y#0"]
    assert instance.status is Status.FINISHED and instance.result == {"go": {"a": 1}}


def test_storages_bound_by_hand_share_one_alias_per_url(tmp_path: Path) -> None:
    """The seed's form builds a new backend per call: the aliases must not grow."""
    from celery_triggers import resolve_storage

    app = make_app()
    url = f"sqlite:///{tmp_path / 'hand.sqlite3'}"
    aliases = {app.triggers.alias_of(resolve_storage(url)) for _ in range(50)}
    assert len(aliases) == 1 and next(iter(aliases)).startswith("~")
    assert app.triggers.storage_for(next(iter(aliases))).url == url


def test_a_setting_of_the_wrong_kind_names_the_setting() -> None:
    from celery_triggers import ConfigurationError

    app = make_app(triggers_finish_timeout="soon", triggers_start_retries=3)
    with pytest.raises(ConfigurationError, match="setting triggers_finish_timeout: expected a number of seconds >= 0"):
        app.triggers.finish_timeout  # noqa: B018
    assert app.triggers.start_retries == 3 and app.triggers.track_started is True
