"""End to end on a real ``celery worker`` subprocess (not eager)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from celery_triggers import DispatchError, Triggers
from celery_triggers.testing import wait_until_idle

from .conftest import ROOT, ExampleRun, Worker, make_app, wait_for

pytestmark = pytest.mark.worker


def uid() -> str:
    return f"w-{uuid.uuid4().hex[:10]}"


def test_the_worker_names_its_storage_at_start_up(worker: Worker, worker_app: Celery) -> None:
    log = worker.log.read_text()
    assert f"celery-triggers: storage {worker_app.conf.triggers_storage}, default runner 'celery'" in log
    assert (
        "celery-triggers: unknown setting 'triggers_sesion_ttl' "
        "(known: triggers_deadline_interval, triggers_finish_timeout" in log
    )


def test_headers_kwargs_and_context_reach_the_task_on_a_worker(worker_app: Celery) -> None:
    session = worker_app.triggers.session(uid())
    session.fire("pong", {"b": 2})
    session.fire("ping", {"a": [1, "x"]})
    instances = wait_until_idle(session)
    probe = instances["t_probe#0"]
    assert probe.status.value == "finished", probe.metadata
    expected_kwargs = {"ping": {"a": [1, "x"]}, "pong": {"b": 2}}
    assert probe.result["trigger_kwargs"] == expected_kwargs
    assert probe.result["context_kwargs"] == expected_kwargs
    assert probe.result["session"] == session.uid and probe.result["instance"] == "t_probe#0"
    assert probe.result["request_headers"]["triggers_session"] == session.uid
    assert probe.result["pid"] != os.getpid()
    assert probe.metadata["task_id"] and probe.metadata["attempts"] == 1
    # A task that does not take trigger_kwargs reads them from the context.
    assert instances["t_contextOnly#0"].result == {"seen": {"t_probe": probe.result}}


def test_failing_task_is_failed_with_its_traceback_and_nothing_cascades(worker: Worker, worker_app: Celery) -> None:
    session = worker_app.triggers.session(uid())
    session.fire("go", {"n": 5})
    instances = wait_until_idle(session)
    assert list(instances) == ["t_boom#0"], "t_afterBoom must not get an instance"
    failed = instances["t_boom#0"]
    assert failed.status.value == "failed"
    assert failed.metadata["exc_type"] == "ValueError"
    assert failed.metadata["exc_message"] == "boom 5"
    assert "ValueError: boom 5" in failed.metadata["traceback"]
    assert "worker_app.py" in failed.metadata["traceback"]
    # The worker keeps serving.
    assert worker.alive
    other = worker_app.triggers.session(uid())
    other.fire("ping")
    other.fire("pong")
    assert wait_until_idle(other)["t_probe#0"].status.value == "finished"


def unreachable_producer(worker_app: Celery, tmp_path: Path) -> Celery:
    """The worker's storage and configs, but a broker folder that does not
    exist: every message it sends is refused."""
    broken = make_app(
        storage=worker_app.conf.triggers_storage,
        runner="celery",
        broker_url="filesystem://localhost//",
        broker_transport_options={
            "data_folder_in": str(tmp_path / "missing"),
            "data_folder_out": str(tmp_path / "missing"),
            "control_folder": str(tmp_path / "control"),
        },
        task_publish_retry=False,
    )
    broken.triggers.configure({n: c.to_dict() for n, c in worker_app.triggers.configs.items()})
    return broken


def test_refused_message_is_reported_and_can_be_redispatched(worker_app: Celery, tmp_path: Path) -> None:
    """A producer whose broker folder is missing: fire() says so, the instance
    stays scheduled, and re-dispatching through a working broker runs it."""
    broken = unreachable_producer(worker_app, tmp_path)
    session = broken.triggers.session(uid())
    session.fire("ping")
    with pytest.raises(DispatchError) as info:
        session.fire("pong")
    assert info.value.instances == ["t_probe#0"]
    assert "t_probe#0" in str(info.value)
    assert session.instances["t_probe#0"].status.value == "scheduled"

    good = Triggers.of(worker_app).session(session.uid)
    good.redispatch("t_probe#0")
    instances = wait_until_idle(good)
    assert instances["t_probe#0"].status.value == "finished"
    assert instances["t_probe#0"].result["trigger_kwargs"] == {"ping": {}, "pong": {}}


def test_context_retry_and_logging_on_a_real_worker(worker_app: Celery) -> None:
    session = worker_app.triggers.session(uid())
    session.fire("retryMe")
    instances = wait_until_idle(session)
    assert {n: i.status.value for n, i in instances.items()} == {
        "t_retrying#0": "replayed",
        "t_retrying#1": "replayed",
        "t_retrying#2": "failed",
    }
    assert instances["t_retrying#1"].metadata["parent"] == "t_retrying#0"
    assert instances["t_retrying#1"].metadata["countdown"] == 0.2
    assert instances["t_retrying#1"].metadata["started_at"] >= instances["t_retrying#0"].metadata["replayed_at"] + 0.2
    assert instances["t_retrying#0"].metadata["exc_type"] == "ConnectionError"
    assert instances["t_retrying#2"].metadata["exc_type"] == "MaxRetriesExceeded"
    assert instances["t_retrying#2"].metadata["exc_message"] == (
        "t_retrying#2: gave up after 2 retries (max_retries=2): ConnectionError: upstream flaky"
    )
    assert all(i.metadata["log_level_name"] == "WARNING" for i in instances.values())
    assert {i.name for i in session.get_instances_with_unresolved_logs()} == set(instances)


def test_celery_self_retry_on_a_real_worker_keeps_one_instance(worker_app: Celery) -> None:
    session = worker_app.triggers.session(uid())
    session.fire("selfRetry")
    instances = wait_until_idle(session)
    instance = instances["t_selfRetry#0"]
    assert list(instances) == ["t_selfRetry#0"]
    assert instance.status.value == "finished" and instance.result == 2
    assert instance.metadata["celery_retries"] == 2 and instance.metadata["attempts"] == 3


@pytest.mark.slow
def test_a_redelivery_after_finish_runs_nothing_and_cascades_once(worker: Worker, worker_app: Celery) -> None:
    """acks_late + the pool process killed after success, before the ack: the
    broker redelivers the message, but the instance is finished, so the
    body does not run again and the cascade happened exactly once."""
    session = worker_app.triggers.session(uid())
    session.fire("crashOnce")
    wait_for(
        lambda: f"not running t_crashOnce#0 of session {session.uid!r}" in worker.log.read_text(errors="replace"),
        60,
        "the redelivered message to be refused",
    )
    instances = wait_until_idle(session)
    assert (worker.data / "crashed-once").exists(), "the pool process died before the ack"
    assert list(instances) == ["t_afterCrash#0", "t_crashOnce#0"], "no second instance anywhere"
    assert instances["t_crashOnce#0"].status.value == "finished"
    assert instances["t_crashOnce#0"].metadata["attempts"] == 1, "the redelivery did not restart the instance"
    assert instances["t_afterCrash#0"].status.value == "finished"
    after_runs = (worker.data / "after-crash-runs").read_text().splitlines()
    assert len(after_runs) == 1, "the cascade happened exactly once"
    assert json.loads(after_runs[0]) == {"t_crashOnce": instances["t_crashOnce#0"].result}
    runs = (worker.data / "crash-once-runs").read_text().splitlines()
    assert len(runs) == 1, "the redelivered message did not run the body again"
    assert worker.alive


def _send_raw(app: Celery, session_uid: str, instance: str, task_id: str, **headers: str) -> None:
    """A message as anyone with broker access could send it."""
    app.send_task(
        "tests.probe",
        kwargs={"trigger_kwargs": {"ping": {"forged": True}}},
        task_id=task_id,
        headers={"triggers_session": session_uid, "triggers_instance": instance, **headers},
    )


def _refused(worker: Worker, text: str) -> bool:
    return text in worker.log.read_text(errors="replace")


def test_forged_stale_and_storage_naming_messages_run_nothing(
    worker: Worker, worker_app: Celery, tmp_path: Path
) -> None:
    broken = unreachable_producer(worker_app, tmp_path)
    session = broken.triggers.session(uid())
    session.fire("ping", {"real": 1})
    with pytest.raises(DispatchError):
        session.fire("pong")  # t_probe#0 scheduled (token T1), its message never sent
    t1 = session.instances["t_probe#0"].metadata["task_id"]
    with pytest.raises(DispatchError):
        session.redispatch("t_probe#0")  # token T2, not sent either
    t2 = session.instances["t_probe#0"].metadata["task_id"]
    assert t1 != t2

    # A forged message with a made-up token, and one for an instance of another session.
    _send_raw(worker_app, session.uid, "t_probe#0", "forged-1")
    other = worker_app.triggers.session(uid())
    other.fire("ping")  # t_probe#0 there is unstarted
    _send_raw(worker_app, other.uid, "t_probe#0", t2)
    # Messages naming a storage by URL, or by an alias this worker does not know.
    evil = tmp_path / "evil" / "x.sqlite3"
    _send_raw(worker_app, session.uid, "t_probe#0", t2, triggers_storage=f"sqlite:///{evil}")
    _send_raw(worker_app, session.uid, "t_probe#0", t2, triggers_storage="legacy")
    wait_for(lambda: _refused(worker, "no storage alias 'legacy'"), 30, "the alias message to be refused")
    log = worker.log.read_text(errors="replace")
    assert "t_probe#0: message forged-1 is not one of its current dispatches" in log
    assert f"not running t_probe#0 of session {other.uid!r}" in log and "t_probe#0 is unstarted" in log
    assert f"no storage alias 'sqlite:///{evil}'" in log
    assert not evil.parent.exists(), "the worker opened nothing the message named"
    assert session.instances["t_probe#0"].status.value == "scheduled", "nothing changed"
    assert other.instances["t_probe#0"].status.value == "unstarted"

    # A re-send adds a token: the original (T1) arrives first and runs, with
    # the kwargs storage holds (not the message's); the re-sent copy (T2) then
    # runs nothing.
    _send_raw(worker_app, session.uid, "t_probe#0", t1)
    instances = wait_until_idle(worker_app.triggers.session(session.uid))
    probe = instances["t_probe#0"]
    assert probe.status.value == "finished" and probe.metadata["attempts"] == 1
    assert probe.metadata["task_id"] == t1 and not probe.metadata.get("tokens")
    assert probe.result["trigger_kwargs"] == {"ping": {"real": 1}, "pong": {}}
    _send_raw(worker_app, session.uid, "t_probe#0", t2)
    wait_for(lambda: _refused(worker, f"message {t2}): t_probe#0 is finished"), 30, "the late copy to be refused")


def test_class_based_tasks_on_a_real_worker(worker_app: Celery) -> None:
    session = worker_app.triggers.session(uid())
    session.fire("firstPageReceived", {"responses": {"q1": 3}, "page": "7"})
    session.fire("retry")
    session.fire("giveUp")
    session.fire("skip", {"a": 1})
    bad = worker_app.triggers.session(uid())
    bad.fire("firstPageReceived", {"responses": [1], "page": "x"})
    instances = wait_until_idle(session)
    statuses = {n: i.status.value for n, i in instances.items()}
    assert statuses == {
        "t_giveUp#0": "replayed",
        "t_giveUp#1": "replayed",
        "t_giveUp#2": "failed",
        "t_importSubject#0": "finished",
        "t_retry#0": "replayed",
        "t_retry#1": "replayed",
        "t_retry#2": "finished",
        "t_skip#0": "skipped",
    }
    assert instances["t_importSubject#0"].result == {"subjectId": 42, "page": 7}
    assert instances["t_retry#2"].result == {"count": 2}
    assert instances["t_giveUp#2"].metadata["exc_type"] == "MaxRetriesExceeded"
    assert instances["t_skip#0"].metadata["kwargs"] == {"skip": {"a": 1}}
    failed = wait_until_idle(bad)["t_importSubject#0"]
    assert failed.status.value == "failed" and failed.metadata["exc_type"] == "KwargsValidationError"
    assert "firstPageReceived.responses: list is not valid" in failed.metadata["exc_message"]
    assert "firstPageReceived.page: Numeric value expected" in failed.metadata["exc_message"]


def test_a_class_based_task_retries_the_celery_way_on_a_real_worker(worker_app: Celery) -> None:
    """``self.retry(exc=..., countdown=0)`` in ``_run`` is Celery's retry: the
    same message again (one instance), bounded by Celery's own count."""
    session = worker_app.triggers.session(uid())
    session.fire("celeryRetry")
    session.fire("celeryGiveUp")
    instances = wait_until_idle(session)
    assert {n: i.status.value for n, i in instances.items()} == {
        "t_celeryGiveUp#0": "failed",
        "t_celeryRetry#0": "finished",
    }
    assert instances["t_celeryRetry#0"].result == {"attempts": 3, "replays": 0}
    gave_up = instances["t_celeryGiveUp#0"]
    assert gave_up.metadata["exc_type"] == "ValueError" and gave_up.metadata["exc_message"] == "attempt 2"
    assert gave_up.metadata["attempts"] == 2, "max_retries=1: Celery's count, not the replays'"


def test_a_fire_returns_a_handle_that_waits_on_a_real_worker(worker_app: Celery) -> None:
    """Production code waits for a session without the testing package."""
    from celery_triggers import Status, WaitTimeout

    fired = worker_app.triggers.fire(uid(), "ping", {"a": 1})
    assert fired == [], "t_probe also awaits pong"
    fired = fired.session.fire("pong", {"b": 2})
    assert [i.name for i in fired] == ["t_probe#0"]
    instances = fired.wait(timeout=30, until="t_probe")
    assert instances["t_probe#0"].status is Status.FINISHED
    assert fired.session.wait(timeout=30)["t_contextOnly#0"].status is Status.FINISHED, "idle: the cascade too"

    stuck = worker_app.triggers.session(uid())
    stuck.fire("ping")  # t_probe#0 waits for pong forever
    with pytest.raises(WaitTimeout) as info:
        stuck.wait(timeout=0.3, until="t_probe#0")
    assert str(info.value).startswith(f"session {stuck.uid!r}: not t_probe#0 resolved after 0.3 s: t_probe#0 unstarted")
    assert info.value.instances["t_probe#0"].status is Status.UNSTARTED


def test_an_operator_works_a_real_worker_session_from_the_command_line(worker: Worker, worker_app: Celery) -> None:
    """`celery -A ... triggers` subprocesses (stdout a pipe, not a
    terminal) on a session a real worker ran: inspect, replay, redispatch,
    recover and purge."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CT_TEST_DATA": str(worker.data), "PYTHONPATH": str(ROOT)}
        return subprocess.run(
            [sys.executable, "-m", "celery", "-A", "tests.worker_app", "triggers", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    session = worker_app.triggers.session(uid())
    session.fire("go", {"n": 7})
    wait_until_idle(session, timeout=30)

    table = cli("inspect", session.uid, "--traceback")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == f"session {session.uid} (1 instance, 1 unresolved) in {worker_app.conf.triggers_storage}"
    assert all(line == line.rstrip() for line in lines), "no padding"
    assert any(line.startswith("t_boom#0\tfailed\tgo\t") and "ValueError: boom 7" in line for line in lines)
    assert "traceback of t_boom#0:" in lines and lines[-1] == "ValueError: boom 7"

    view = json.loads(cli("inspect", session.uid, "--json").stdout)
    failed = next(t for t in view["tasks"] if t["task"] == "t_boom")["instances"][0]
    assert view["schema"] == "celery-triggers.inspect/1" and failed["instance"] == "t_boom#0"
    assert failed["hostname"] and failed["task_id"] and failed["attempts"] == 1
    assert failed["exception"] == {"type": "ValueError", "module": "builtins", "message": "boom 7"}

    dry = cli("replay", session.uid, "t_boom#0", "--kwargs", '{"go": {"n": 8}}', "--dry-run")
    assert dry.stdout.strip() == (
        "would replay t_boom#0 (failed): a new instance of t_boom would run with kwargs "
        '{"go": {"n": 8}}; nothing was changed (--dry-run)'
    ), dry.stderr
    replayed = cli("replay", session.uid, "t_boom#0", "--kwargs", '{"go": {"n": 8}}')
    assert replayed.stdout.strip() == "replayed t_boom#0 as t_boom#1 (scheduled)", replayed.stderr
    instances = wait_until_idle(session, timeout=30)
    assert instances["t_boom#1"].metadata["exc_message"] == "boom 8"

    redispatch = cli("redispatch", session.uid, "--older-than", "0")
    assert redispatch.returncode == 0 and redispatch.stdout.splitlines() == ["re-sent 0 instance(s), skipped 0"]
    recover = cli("recover", session.uid, "--dry-run", "--json")
    assert recover.returncode == 0 and json.loads(recover.stdout) == []
    purge = cli("purge", "--older-than", "0s", "--dry-run")
    assert purge.returncode == 0 and session.uid in purge.stdout.splitlines()
    assert purge.stdout.splitlines()[-1].startswith("would purge ")
    assert session.instances, "a dry run deletes nothing"


def _echo_runs(worker: Worker) -> dict[str, dict[str, Any]]:
    path = worker.data / "echo-runs"
    lines = path.read_text().splitlines() if path.exists() else []
    return {run["id"]: run for run in map(json.loads, lines)}


def _ignored(worker: Worker, task_id: str) -> bool:
    return f"Task tests.echo[{task_id}] ignored" in worker.log.read_text(errors="replace")


def test_a_trigger_task_called_directly_runs_as_the_plain_task_it_is_and_changes_no_session(
    worker: Worker, worker_app: Celery
) -> None:
    """Given a session with an instance waiting, when its task is called as
    a plain Celery task (delay, or send_task with kwargs that look like the
    library's, a context naming that session), then the body runs with what
    the caller passed, outside any trigger context, and no session changes."""
    session = worker_app.triggers.session(uid())
    session.fire("ping", {"real": 1})
    before = {n: i.to_dict() for n, i in session.instances.items()}
    sessions_before = set(worker_app.triggers.storage.sessions())
    echo = worker_app.tasks["tests.echo"]
    direct = echo.apply_async(kwargs={"trigger_kwargs": {"echo": {"n": 1}}}, task_id=f"direct-{uid()}")
    forged_context = {"session_uid": session.uid, "instance_name": "t_probe#0", "trigger_kwargs": {}}
    looks_internal = f"internal-{uid()}"
    worker_app.send_task(
        "tests.echo",
        kwargs={"trigger_kwargs": {"ping": {"forged": True}}, "context": forged_context},
        task_id=looks_internal,
    )
    probe_id = f"probe-{uid()}"
    worker_app.send_task("tests.probe", kwargs={"trigger_kwargs": {"ping": {}, "pong": {}}}, task_id=probe_id)

    runs = wait_for(lambda: (r := _echo_runs(worker)).keys() >= {direct.id, looks_internal} and r, 30, "both runs")
    assert runs[direct.id] == {
        "id": direct.id,
        "trigger_kwargs": {"echo": {"n": 1}},
        "context": None,
        "current_session": None,
    }
    assert runs[looks_internal]["context"] == forged_context and runs[looks_internal]["current_session"] is None
    wait_for(lambda: _refused(worker, f"tests.probe[{probe_id}] raised unexpected: NotInTriggerTask"), 30, "probe")
    assert {n: i.to_dict() for n, i in session.instances.items()} == before, "the session did not change"
    assert set(worker_app.triggers.storage.sessions()) == sessions_before, "no session was made"


MALFORMED_HEADERS: list[tuple[str, dict[str, Any], str]] = [
    ("int", {"triggers_session": 5, "triggers_instance": "t_echo#0"}, "triggers_session must be a non-empty string"),
    ("list", {"triggers_session": ["s"], "triggers_instance": "t_echo#0"}, "got ['s']"),
    ("huge", {"triggers_session": "u" * 5000, "triggers_instance": "t_echo#0"}, "5000 characters long, more than 1024"),
    ("no-instance", {"triggers_session": "s"}, "triggers_session without triggers_instance"),
    ("no-session", {"triggers_instance": "t_echo#0"}, "triggers_instance without triggers_session"),
    ("storage-only", {"triggers_storage": "legacy"}, "triggers_storage without triggers_session"),
    ("not-an-instance", {"triggers_session": "s", "triggers_instance": "t_echo"}, "not an instance name"),
    ("storage-int", {"triggers_session": "s", "triggers_instance": "t_echo#0", "triggers_storage": 7}, "got 7"),
    (
        "newline",
        {"triggers_session": "inj\nFAKE-LINE injected", "triggers_instance": "t_echo#0"},
        r"'inj\nFAKE-LINE injected'",
    ),
    ("ansi", {"triggers_session": "s", "triggers_instance": "\x1b[31mt_echo#0"}, r"\x1b[31mt_echo#0"),
    ("bidi", {"triggers_session": "s\u202egnp.exe", "triggers_instance": "t_echo#0"}, r"\u202e"),
]


def test_malformed_trigger_headers_are_refused_with_one_error_line_and_run_nothing(
    worker: Worker, worker_app: Celery
) -> None:
    """Given messages whose trigger headers are malformed (wrong types, a
    list, a huge value, a session without an instance, control
    characters), each is refused: one ERROR line naming the problem with
    the values escaped and truncated, the body not run, the message
    acknowledged (Celery's Ignore)."""
    ids = {case: f"malformed-{case}-{uid()}" for case, _, _ in MALFORMED_HEADERS}
    for case, headers, _ in MALFORMED_HEADERS:
        worker_app.send_task("tests.echo", kwargs={"trigger_kwargs": {"echo": {}}}, task_id=ids[case], headers=headers)
    wait_for(lambda: all(_ignored(worker, task_id) for task_id in ids.values()), 30, "every message to be ignored")
    lines = worker.log.read_text(errors="replace").splitlines()
    for case, _, problem in MALFORMED_HEADERS:
        errors = [line for line in lines if ids[case] in line and "ERROR" in line]
        assert len(errors) == 1, (case, errors)
        assert problem in errors[0], (case, errors[0])
        assert len(errors[0]) < 600, f"{case}: the values are truncated"
    assert not set(ids.values()) & set(_echo_runs(worker)), "no body ran"
    assert not any(line.startswith("FAKE-LINE") for line in lines), "a header cannot forge a log line"
    assert not any(c in "".join(lines) for c in "\x1b\u202e"), "control characters are escaped"


# -- the examples, run once per session in the background (conftest.ExampleRun) --


def test_survey_example_runs_on_a_real_worker(survey_example: ExampleRun) -> None:
    """The README's example, exactly as a user runs it (with its own worker)."""
    _, instances = survey_example.result()
    assert {n: i["status"] for n, i in instances.items()} == {
        "t_computeScore#0": "finished",
        "t_createApplicant#0": "finished",
    }
    created = instances["t_createApplicant#0"]["result"]
    assert created == {"applicant_id": "A-S-42", "observations": 5}
    score = instances["t_computeScore#0"]
    assert score["kwargs"]["t_createApplicant"] == created
    assert score["result"] == {"applicant_id": "A-S-42", "score": 50}
    assert score["metadata"]["hostname"], "the worker recorded where it ran"


def test_django_shop_example_runs_on_a_real_worker_with_its_sessions_in_the_database(shop_example: ExampleRun) -> None:
    """``python -m examples.django_shop``: a Django project with no servers
    (SQLite, the filesystem broker), its own worker, django-db://."""
    stdout, instances = shop_example.result()
    assert {n: i["status"] for n, i in instances.items()} == {
        "t_chargePayment#0": "finished",
        "t_reserveStock#0": "finished",
        "t_ship#0": "finished",
    }
    assert instances["t_ship#0"]["result"] == "order O-1001 shipped: 3 items, 31.50 EUR charged"
    assert "/admin/celery_triggers/session/1/change/" in stdout
    import sqlite3

    with sqlite3.connect(shop_example.data / "shop.sqlite3") as db:  # the sessions are rows of the project's database
        rows = db.execute("SELECT name, status FROM celery_triggers_taskinstance ORDER BY name").fetchall()
    assert rows == [("t_chargePayment#0", "finished"), ("t_reserveStock#0", "finished"), ("t_ship#0", "finished")]
