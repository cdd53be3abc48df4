"""Instances follow everything Celery knows about their task, on real
prefork workers (Redis broker with its one-hour visibility timeout, Redis
storage): time limits, revokes, lost pool processes and killed workers
resolve by themselves within a few heartbeat intervals (0.5 s here); a
healthy long task is never touched; a backlog longer than the sweep age
runs each instance once; a storage that lost data says so at ERROR."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from celery_triggers import Status

from .conftest import ROOT, Worker, make_app, wait_for
from .servers import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.worker]


@pytest.fixture(scope="module")
def storage_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The lifecycle workers' storage: a server of its own (a test flushes it)."""
    server = RedisServer(tmp_path_factory.mktemp("lifecycle-storage"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    return redis_server.url.rsplit("/", 1)[0] + f"/{2 + uuid.uuid4().int % 10}"


def producer(broker_url: str, storage_url: str) -> Celery:
    """The application side: the lifecycle app's configs, its broker and storage."""
    import tests.lifecycle_app

    app = make_app(storage=storage_url, runner="celery", broker_url=broker_url)
    app.triggers.configure({n: c.to_dict() for n, c in tests.lifecycle_app.app.triggers.configs.items()})
    return app


def worker_for(tmp_path: Path, broker_url: str, storage_url: str, name: str = "w", **env: str) -> Worker:
    data = tmp_path / name
    data.mkdir(exist_ok=True)
    return Worker(data, "tests.lifecycle_app", CT_BROKER=broker_url, CT_STORAGE=storage_url, **env)


def runs(worker: Worker) -> list[list[str]]:
    path = worker.data / "runs"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def status(app: Celery, uid: str, name: str) -> Status | None:
    instance = app.triggers.session(uid).instances.get(name)
    return instance.status if instance is not None else None


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def run(tmp_path: Path, broker_url: str, storage_server: RedisServer) -> Iterator[tuple[Celery, Worker]]:
    """A producer and a started worker whose sweep is off: what resolves an
    instance here is the lifecycle handlers alone."""
    storage = f"{storage_server.url}?prefix={uuid.uuid4().hex[:8]}"
    worker = worker_for(tmp_path, broker_url, storage, CT_RECOVER_INTERVAL="0")
    worker.start()
    try:
        yield producer(broker_url, storage), worker
    finally:
        worker.stop()


def test_a_hard_time_limit_fails_the_instance_at_once(run: tuple[Celery, Worker]) -> None:
    app, _ = run
    session = app.triggers.session(uid("hard"))
    session.fire("hard")
    wait_for(lambda: status(app, session.uid, "t_hard#0") is Status.FAILED, 20, "the time limit")
    failed = session.instance("t_hard#0")
    assert failed.metadata["exc_type"] == "TimeLimitExceeded", failed.metadata
    assert failed.can_replay


def test_an_uncaught_soft_time_limit_fails_the_instance(run: tuple[Celery, Worker]) -> None:
    app, _ = run
    session = app.triggers.session(uid("soft"))
    session.fire("soft")
    wait_for(lambda: status(app, session.uid, "t_soft#0") is Status.FAILED, 20, "the soft time limit")
    assert session.instance("t_soft#0").metadata["exc_type"] == "SoftTimeLimitExceeded"


def test_revoked_while_running_fails_replayably(run: tuple[Celery, Worker]) -> None:
    app, worker = run
    session = app.triggers.session(uid("revoke-running"))
    session.fire("block")
    wait_for(lambda: status(app, session.uid, "t_block#0") is Status.RUNNING, 20, "the start")
    token = session.instance("t_block#0").metadata["task_id"]
    app.control.revoke(token, terminate=True, signal="SIGKILL")
    wait_for(lambda: status(app, session.uid, "t_block#0") is Status.FAILED, 20, "the revoke")
    failed = session.instance("t_block#0")
    assert failed.metadata["exc_type"] == "TaskRevokedError", failed.metadata
    assert "revoked while running" in failed.metadata["exc_message"]
    (worker.data / f"release-{session.uid}").write_text("1")
    clone = session.replay_failed_instance("t_block#0")
    wait_for(lambda: status(app, session.uid, clone.name) is Status.FINISHED, 20, "the replay")


def test_revoked_before_it_started_is_abandoned_and_never_resent(run: tuple[Celery, Worker]) -> None:
    app, worker = run
    busy = [app.triggers.session(uid("busy")) for _ in range(2)]
    for session in busy:  # both pool processes blocked, their messages reserved
        session.fire("block")
    wait_for(lambda: all(status(app, s.uid, "t_block#0") is Status.RUNNING for s in busy), 20, "two running")
    queued = app.triggers.session(uid("revoke-queued"))
    queued.fire("block")  # waits in the broker's queue
    token = queued.instance("t_block#0").metadata["task_id"]
    app.control.revoke(token)
    for session in busy:
        (worker.data / f"release-{session.uid}").write_text("1")
    wait_for(lambda: status(app, queued.uid, "t_block#0") is Status.ABANDONED, 20, "the revoke")
    abandoned = queued.instance("t_block#0")
    assert abandoned.metadata["abandoned_reason"] == "revoked" and abandoned.metadata["revoked"] == "revoked"
    assert app.triggers.recover([queued.uid], older_than=0) == [], "resolved: nothing to re-send"
    assert not [r for r in runs(worker) if r[0] == queued.uid], "its body never ran"


def test_a_lost_pool_process_fails_its_instance_at_once(run: tuple[Celery, Worker]) -> None:
    app, worker = run
    session = app.triggers.session(uid("child"))
    session.fire("block")
    wait_for(lambda: status(app, session.uid, "t_block#0") is Status.RUNNING, 20, "the start")
    pid = int(next(r[3] for r in runs(worker) if r[0] == session.uid))
    assert pid in worker.children()
    os.kill(pid, signal.SIGKILL)  # only the pool process this test's task runs in
    wait_for(lambda: status(app, session.uid, "t_block#0") is Status.FAILED, 20, "the lost child")
    assert session.instance("t_block#0").metadata["exc_type"] == "WorkerLost"


def test_a_lost_pool_process_of_an_acks_late_task_waits_for_its_message(run: tuple[Celery, Worker]) -> None:
    app, worker = run
    session = app.triggers.session(uid("child-late"))
    session.fire("blockLate")
    wait_for(lambda: status(app, session.uid, "t_blockLate#0") is Status.RUNNING, 20, "the start")
    pid = int(next(r[3] for r in runs(worker) if r[0] == session.uid))
    (worker.data / f"release-{session.uid}").write_text("1")  # the redelivered message will finish
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status(app, session.uid, "t_afterBlockLate#0") is Status.FINISHED, 30, "the redelivery")
    finished = session.instance("t_blockLate#0")
    assert finished.status is Status.FINISHED and finished.metadata["attempts"] == 2
    assert [r[1] for r in runs(worker) if r[0] == session.uid].count("t_afterBlockLate#0") == 1


@pytest.mark.parametrize("acks_late", [False, True])
def test_a_killed_worker_s_instance_resolves_by_itself(
    tmp_path: Path, broker_url: str, storage_server: RedisServer, acks_late: bool
) -> None:
    """SIGKILL of the whole worker; a new one comes up. Without acks_late
    the lease expires and the sweep fails the instance (WorkerLost); with
    it, the sweep re-sends it at once, whatever the broker's one-hour
    visibility timeout, and the cascade happens once."""
    storage = f"{storage_server.url}?prefix={uuid.uuid4().hex[:8]}"
    app = producer(broker_url, storage)
    first = worker_for(tmp_path, broker_url, storage, "first")
    first.start()
    session = app.triggers.session(uid("killed"))
    trigger, name = ("blockLate", "t_blockLate#0") if acks_late else ("block", "t_block#0")
    try:
        session.fire(trigger)
        wait_for(lambda: status(app, session.uid, name) is Status.RUNNING, 20, "the start")
        first.kill()
    finally:
        first.stop()
    second = worker_for(tmp_path, broker_url, storage, "second")
    (second.data / f"release-{session.uid}").write_text("1")
    second.start()
    try:
        if acks_late:
            wait_for(lambda: status(app, session.uid, "t_afterBlockLate#0") is Status.FINISHED, 30, "the re-send")
            resent = session.instance(name)
            assert resent.status is Status.FINISHED and resent.metadata["dispatches"] == 2
            assert [r[1] for r in runs(second) if r[0] == session.uid] == [name, "t_afterBlockLate#0"]
        else:
            wait_for(lambda: status(app, session.uid, name) is Status.FAILED, 30, "the sweep")
            lost = session.instance(name)
            assert lost.metadata["exc_type"] == "WorkerLost" and "lease expired" in lost.metadata["exc_message"]
            assert "recovered" in second.log.read_text(errors="replace")
    finally:
        second.stop()


def test_a_long_healthy_task_is_never_touched_by_the_sweep(
    tmp_path: Path, broker_url: str, storage_server: RedisServer
) -> None:
    """A 20 s task under a 3 s sweep age and a 1 s sweep: its lease is live."""
    storage = f"{storage_server.url}?prefix={uuid.uuid4().hex[:8]}"
    app = producer(broker_url, storage)
    worker = worker_for(tmp_path, broker_url, storage, CT_HEALTHY="20")
    worker.start()
    try:
        session = app.triggers.session(uid("healthy"))
        session.fire("healthy")
        wait_for(lambda: status(app, session.uid, "t_healthy#0") is Status.FINISHED, 40, "the task")
        done = session.instance("t_healthy#0")
        assert done.result == "done" and done.metadata.get("dispatches", 1) == 1 and done.metadata["attempts"] == 1
        assert done.metadata["lease"] == 0.5 and done.metadata["finished_at"] - done.metadata["started_at"] >= 20
        assert "recovered" not in worker.log.read_text(errors="replace")
    finally:
        worker.stop()


def test_a_backlog_longer_than_the_sweep_age_runs_each_instance_once(
    tmp_path: Path, broker_url: str, storage_server: RedisServer
) -> None:
    """30 instances of 0.5 s on two pool processes: 7.5 s of queue under a
    3 s sweep age. The sweep re-sends the waiting ones (a token added, the
    queued copies stay valid): every instance finishes, each body runs once."""
    storage = f"{storage_server.url}?prefix={uuid.uuid4().hex[:8]}"
    app = producer(broker_url, storage)
    session = app.triggers.session(uid("backlog"))
    session.fire("batch")
    for n in range(30):
        session.fire("item", {"n": n})
    worker = worker_for(tmp_path, broker_url, storage)
    worker.start()
    try:
        names = [f"t_item#{n}" for n in range(30)]

        def all_finished() -> bool:
            instances = session.instances
            return all(instances[n].status is Status.FINISHED for n in names)

        wait_for(all_finished, 90, "the backlog")
        counted = collections.Counter(r[1] for r in runs(worker) if r[0] == session.uid)
        assert counted == dict.fromkeys(names, 1), "each body ran once"
        resent = [n for n, i in session.instances.items() if i.metadata.get("dispatches", 1) > 1]
        assert resent, "the sweep re-sent some of the waiting instances"
    finally:
        worker.stop()


def test_a_storage_that_lost_its_data_is_an_error(tmp_path: Path, broker_url: str, storage_server: RedisServer) -> None:
    """Scheduled instances, then the storage is emptied (a Redis restarted
    without persistence): the worker says so at ERROR, with what to do, and
    ``recover --dry-run`` reports it."""
    import redis

    storage = f"{storage_server.url}?prefix={uuid.uuid4().hex[:8]}"
    app = producer(broker_url, storage)
    uids = [uid("lost") for _ in range(3)]
    for u in uids:
        app.triggers.fire(u, "block")  # messages wait: no worker yet
    client = redis.Redis.from_url(storage_server.url)
    prefix = storage.rsplit("prefix=", 1)[1]
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    worker = worker_for(tmp_path, broker_url, storage)
    worker.start()
    try:

        def error_lines() -> list[str]:
            lines = worker.log.read_text(errors="replace").splitlines()
            return [x for x in lines if "ERROR" in x and "lost data" in x and "Restore it from a backup" in x]

        wait_for(lambda: any("t_block#0 of session" in x for x in error_lines()), 30, "the error line")
        dry = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "tests.lifecycle_app", "triggers", "recover", "--all", "--dry-run"],
            cwd=ROOT,
            env=worker.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert dry.returncode == 0, dry.stderr
        assert "lost data" in dry.stdout and "storage lost data" in dry.stdout, dry.stdout
    finally:
        worker.stop()
