"""The worker protocol under faults, on a real ``celery worker``: Redis
broker, Redis storage (a second server the tests stop), SIGKILLs of the
worker's processes (by PID, only those the test started)."""

from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from celery_triggers import CorruptSession, Status, StorageError

from .conftest import ROOT, Worker, make_app, wait_for
from .servers import RabbitMQServer, RedisServer

pytestmark = [pytest.mark.worker, pytest.mark.slow]

CELERY = [sys.executable, "-m", "celery"]
CASCADE = ["t_a#0", "t_b#0", "t_c#0", "t_d#0"]
_db = itertools.cycle(range(2, 16))


@pytest.fixture
def storage_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "storage")
    (tmp_path / "storage").mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    """A database of the shared Redis of its own (emptied first: the numbers
    are reused once every one has been used)."""
    import redis

    db = next(_db)
    client = redis.Redis(port=redis_server.port, db=db)
    client.flushdb()
    client.close()
    return f"redis://127.0.0.1:{redis_server.port}/{db}"


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    server = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["redis", "rabbitmq"])
def any_broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("broker_url"))
    server: RabbitMQServer = request.getfixturevalue("rabbitmq_server")
    return server.url


def producer(broker_url: str, storage_url: str) -> Celery:
    """The application side: same task configs as tests.fault_app."""
    import tests.fault_app

    app = make_app(storage=storage_url, runner="celery", broker_url=broker_url)
    app.triggers.configure({n: c.to_dict() for n, c in tests.fault_app.app.triggers.configs.items()})
    return app


def fault_worker(tmp_path: Path, broker_url: str, storage_url: str, acks_late: bool, **env: str) -> Worker:
    data = tmp_path / "worker"
    data.mkdir()
    return Worker(
        data,
        "tests.fault_app",
        CT_BROKER=broker_url,
        CT_STORAGE=storage_url,
        CT_ACKS_LATE="1" if acks_late else "0",
        **env,
    )


@contextmanager
def fault_run(
    tmp_path: Path, broker_url: str, storage_url: str, *, acks_late: bool, **env: str
) -> Iterator[tuple[Celery, Worker]]:
    """A producer app and a started fault worker, stopped afterwards."""
    app = producer(broker_url, storage_url)
    worker = fault_worker(tmp_path, broker_url, storage_url, acks_late, **env)
    worker.start()
    try:
        yield app, worker
    finally:
        worker.stop()


def runs(worker: Worker) -> collections.Counter[tuple[str, str]]:
    path = worker.data / "runs"
    lines = path.read_text().splitlines() if path.exists() else []
    return collections.Counter(tuple(line.split(" ", 1)) for line in lines)  # type: ignore[misc]


def statuses(app: Celery, uids: list[str]) -> dict[str, dict[str, str]]:
    return {u: {n: i.status.value for n, i in app.triggers.session(u).instances.items()} for u in uids}


def complete(app: Celery, uids: list[str]) -> bool:
    done = dict.fromkeys(CASCADE, "finished")
    return all(s == done for s in statuses(app, uids).values())


def settle(app: Celery, uids: list[str], quiet: float, limit: float) -> None:
    """Wait until every session is complete, or nothing changed for ``quiet`` s."""
    last, since, deadline = None, time.monotonic(), time.monotonic() + limit
    while time.monotonic() < deadline:
        now = statuses(app, uids)
        if complete(app, uids):
            return
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > quiet:
            return
        time.sleep(0.2)


def assert_complete_once(app: Celery, uids: list[str]) -> None:
    final = statuses(app, uids)
    broken = {u: s for u, s in final.items() if s != dict.fromkeys(CASCADE, "finished")}
    errors = [
        f"{u} {n}: {i.metadata.get('exc_type')}: {i.metadata.get('exc_message')}"
        for u in list(broken)[:3]
        for n, i in app.triggers.session(u).instances.items()
        if i.status is Status.FAILED
    ]
    assert not broken, f"{len(broken)} session(s) incomplete, e.g. {list(broken.items())[:3]}; {errors}"
    for u in uids[:20]:
        d = app.triggers.session(u).instances["t_d#0"]
        assert d.result == {"from": ["t_a", "t_b", "t_c"]}


def test_storage_outage_mid_run_loses_nothing_and_runs_no_body_twice(
    tmp_path: Path, broker_url: str, storage_server: RedisServer
) -> None:
    run = fault_run(tmp_path, broker_url, storage_server.url, acks_late=False, CT_VISIBILITY="120")
    with run as (app, worker):
        uids = [f"outage-{i}-{uuid.uuid4().hex[:6]}" for i in range(200)]
        for u in uids:
            app.triggers.fire(u, "go")
        wait_for(lambda: sum(runs(worker).values()) >= 150, 60, "the run to be under way")
        storage_server.stop()
        time.sleep(5)  # the outage itself
        storage_server.start()
        settle(app, uids, quiet=6, limit=90)
        actions = app.triggers.recover(older_than=0)
        settle(app, uids, quiet=6, limit=60)
        assert_complete_once(app, uids)
        counted = runs(worker)
        assert max(counted.values()) == 1, [k for k, v in counted.items() if v > 1][:5]
        assert len(counted) == 4 * len(uids)
        log = worker.log.read_text(errors="replace")
        assert "storage unreachable" in log, "the outage hit the worker"
        assert all(a.action in ("redispatched", "skipped") for a in actions), actions


def _ran_at_least(worker: Worker, count: int) -> Callable[[], bool]:
    return lambda: sum(runs(worker).values()) >= count


def _cascade_done(app: Celery, uid: str) -> Callable[[], bool]:
    def done() -> bool:
        instance = app.triggers.session(uid).instances.get("t_after_slow#0")
        return instance is not None and instance.status is Status.FINISHED

    return done


def test_sigkills_with_acks_late_complete_every_session_exactly_once(
    tmp_path: Path, any_broker_url: str, storage_server: RedisServer
) -> None:
    run = fault_run(tmp_path, any_broker_url, storage_server.url, acks_late=True)
    with run as (app, worker):
        uids = [f"kill-{i}-{uuid.uuid4().hex[:6]}" for i in range(200)]
        for u in uids:
            app.triggers.fire(u, "go")
        for k in range(4):
            target = 100 * (k + 1)
            wait_for(_ran_at_least(worker, target), 60, f"{target} bodies")
            if k % 2 == 0:
                os.kill(worker.children()[0], signal.SIGKILL)  # a pool process
            else:
                worker.kill()  # the main process and its pool
                worker.start()
        settle(app, uids, quiet=8, limit=120)
        app.triggers.recover(older_than=0)
        settle(app, uids, quiet=8, limit=60)
        assert_complete_once(app, uids)
        for u in uids:
            assert list(app.triggers.session(u).instances) == CASCADE, "no instance made twice"
        counted = runs(worker)
        assert len(counted) == 4 * len(uids), "every body ran at least once"


def test_sigkill_of_a_pool_process_without_acks_late_fails_its_instance_and_replay_finishes(
    tmp_path: Path, broker_url: str, storage_server: RedisServer
) -> None:
    """A pool process killed under its task: the worker's main process sees
    the lost child and fails the instance at once (WorkerLost), with no
    sweep and no command; recover then has nothing to do, and a replay runs.
    (A whole worker killed is test_lifecycle's: its sweep resolves it.)"""
    run = fault_run(tmp_path, broker_url, storage_server.url, acks_late=False)
    with run as (app, worker):
        session = app.triggers.session(f"hang-{uuid.uuid4().hex[:6]}")
        session.fire("hang")
        pid_file = worker.data / "hang.pid"
        wait_for(pid_file.exists, 30, "the task to start")
        wait_for(lambda: session.instances["t_hang#0"].status is Status.RUNNING, 10, "running")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        wait_for(lambda: session.instances["t_hang#0"].status is Status.FAILED, 20, "the lost child")
        failed = session.instances["t_hang#0"]
        assert failed.metadata["exc_type"] == "WorkerLost" and "pool process" in failed.metadata["exc_message"]
        assert f"t_hang#0 of session {session.uid!r} is failed: WorkerLost" in worker.log.read_text(errors="replace")

        result = subprocess.run(
            [*CELERY, "-A", "tests.fault_app", "triggers", "recover", session.uid, "--older-than", "0"],
            cwd=ROOT,
            env={**worker.env, "CT_TEST_DATA": str(worker.data)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "resolved 0 instance(s)" in result.stdout, result.stdout

        (worker.data / "hang.released").write_text("1")
        clone = session.replay_failed_instance("t_hang#0")
        wait_for(lambda: session.instances[clone.name].status is Status.FINISHED, 30, "the replay")
        assert session.instances[clone.name].result == "done"


def test_a_storage_password_is_never_shown(tmp_path: Path, broker_url: str) -> None:
    """The worker's log, reprs, CLI output, errors and message headers
    show the storage URL with its password masked."""
    from celery.bin.base import CLIContext
    from celery.signals import before_task_publish
    from click.testing import CliRunner

    from celery_triggers.cli import triggers

    server = RedisServer(tmp_path / "secret-storage", password="s3cret-pw")
    (tmp_path / "secret-storage").mkdir()
    server.start()
    published: list[dict[str, Any]] = []

    def capture(headers: dict[str, Any] | None = None, **_: Any) -> None:
        published.append(dict(headers or {}))

    before_task_publish.connect(capture, weak=False)
    try:
        with fault_run(tmp_path, broker_url, server.url, acks_late=False) as (app, worker):
            uid = f"pw-{uuid.uuid4().hex[:6]}"
            app.triggers.fire(uid, "go")
            wait_for(lambda: complete(app, [uid]), 30, "the cascade")
            listing = CliRunner().invoke(triggers, ["sessions"], obj=CLIContext(app=app, no_color=True, workdir=None))
            shown = {
                "worker log": worker.log.read_text(),
                "repr": repr(app.triggers) + repr(app.triggers.storage) + repr(app.triggers.session(uid).storage),
                "CLI": listing.output,
                "headers": json.dumps(published, default=str),
            }
            server.stop()
            with pytest.raises(StorageError) as outage:
                app.triggers.fire(uid, "go")
            shown["error"] = str(outage.value)
    finally:
        before_task_publish.disconnect(capture)
        server.stop()
    assert sum(1 for h in published if h.get("triggers_session") == uid) >= 1, "trigger messages were captured"
    assert {where: "s3cret-pw" in text for where, text in shown.items()} == dict.fromkeys(shown, False)
    assert f"redis://:***@127.0.0.1:{server.port}/0" in shown["worker log"] + shown["CLI"] + shown["error"]


def test_a_corrupt_session_record_does_not_stop_a_worker_or_other_sessions(
    tmp_path: Path, broker_url: str, storage_server: RedisServer
) -> None:
    """A worker started on a storage holding a corrupt session runs the
    other sessions (start-up never reads sessions)."""
    import redis

    from celery_triggers.storage.kv import session_digest

    client = redis.Redis(port=storage_server.port)
    client.set(f"ct:{{{session_digest('corrupt')}}}:state", b"{not json")
    client.close()
    with fault_run(tmp_path, broker_url, storage_server.url, acks_late=False) as (app, worker):
        uid = f"fine-{uuid.uuid4().hex[:6]}"
        app.triggers.fire(uid, "go")
        wait_for(lambda: complete(app, [uid]), 30, "the cascade")
        with pytest.raises(CorruptSession, match="session 'corrupt'"):
            app.triggers.session("corrupt").fire("go")
        assert "CRITICAL" not in worker.log.read_text()


def test_a_task_running_longer_than_the_session_ttl_keeps_its_session_and_cascade(
    tmp_path: Path, broker_url: str, storage_server: RedisServer
) -> None:
    """Triggers_session_ttl=1 with tasks running 2.5 s: no session
    expires under a running task; each cascade completes, and the TTL counts
    once nothing is in flight."""
    env = {"CT_SESSION_TTL": "1", "CT_SLOW": "2.5"}
    with fault_run(tmp_path, broker_url, storage_server.url, acks_late=False, **env) as (app, worker):
        app.conf.triggers_session_ttl = 1
        app.triggers.reset_storage()
        uids = [f"ttl-{uuid.uuid4().hex[:6]}" for _ in range(2)]
        for uid in uids:
            app.triggers.fire(uid, "slow")
        for uid in uids:
            wait_for(_cascade_done(app, uid), 30, f"the cascade of {uid}")
        assert sorted(runs(worker)) == sorted((u, n) for u in uids for n in ("t_slow#0", "t_after_slow#0"))
        storage = app.triggers.storage
        ttls = [storage.client.pttl(k) for u in uids for k in storage.keys(u) if storage.client.exists(k)]
        assert ttls and all(0 < t <= 1000 for t in ttls), "nothing in flight: every key expires within the TTL"


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("memory://", "triggers_storage is 'memory://', which lives in one process"),
        ("django-cache://default", "Django cache 'default' is a LocMemCache, which lives in one process"),
    ],
)
def test_a_worker_refuses_process_local_storage_at_start(
    tmp_path: Path, broker_url: str, storage: str, message: str
) -> None:
    data = tmp_path / "w"
    data.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CT_TEST_DATA": str(data), "CT_BROKER": broker_url}
    proc = subprocess.run(
        [*CELERY, "-A", "tests.fault_app", "worker", "--concurrency=1", "--without-mingle", "--without-gossip"],
        cwd=ROOT,
        env={**env, "CT_STORAGE": storage},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_storage_down_at_the_start_retries_function_and_class_tasks(
    tmp_path: Path, broker_url: str, storage_server: RedisServer
) -> None:
    """Given messages of a function task and of a class-based task that a
    worker takes while storage is down, then neither body runs, each
    message is retried (Celery's retry, whatever the task class's own
    ``retry`` is), and once storage is back both run once and cascade."""
    with fault_run(tmp_path, broker_url, storage_server.url, acks_late=False, CT_VISIBILITY="120") as (app, worker):
        session = app.triggers.session(f"down-at-start-{uuid.uuid4().hex[:6]}")
        frozen = [worker.proc.pid, *worker.children()] if worker.proc else []
        for pid in frozen:  # the worker takes nothing until storage is down (it pings storage at start-up)
            os.kill(pid, signal.SIGSTOP)
        try:
            session.fire("slow")
            session.fire("classy")
            storage_server.stop()
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)

        def retried() -> bool:
            log = worker.log.read_text(errors="replace")
            return all(f"storage unreachable at the start of {n}" in log for n in ("t_slow#0", "t_classy#0"))

        wait_for(retried, 30, "both starts to be retried")
        assert not runs(worker), "no body ran while storage was down"
        storage_server.start()
        done = dict.fromkeys(["t_after_slow#0", "t_classy#0", "t_slow#0"], "finished")
        wait_for(lambda: statuses(app, [session.uid])[session.uid] == done, 30, "both tasks and the cascade")
        log = worker.log.read_text(errors="replace")
    assert "TypeError" not in log, log[-3000:]
    expected = {(session.uid, n): 1 for n in ("t_slow#0", "t_classy#0", "t_after_slow#0")}
    assert runs(worker) == collections.Counter(expected), "each body ran once"


@contextmanager
def frozen(worker: Worker) -> Iterator[None]:
    """The worker's processes stopped (SIGSTOP, by PID), continued after:
    what is sent meanwhile waits in the broker."""
    pids = [worker.proc.pid, *worker.children()] if worker.proc else []
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def set_scripting(server: RedisServer, allowed: bool) -> None:
    """Grant or take away the storage user's right to run scripts (every
    storage operation is one): its commands are refused, not unreachable."""
    import redis

    client = redis.Redis(port=server.port)
    client.execute_command("ACL", "SETUSER", "default", "+@all" if allowed else "-@scripting")  # type: ignore[no-untyped-call]  # untyped in redis-py
    client.close()


def test_a_refused_storage_command_at_the_start_fails_fast(
    tmp_path: Path, broker_url: str, storage_server: RedisServer
) -> None:
    """Given a storage that answers but refuses the start's command (an ACL:
    not a connection error), the body does not run, one ERROR line gives
    the real cause, the message is not retried, and the instance stays
    scheduled for recover."""
    with fault_run(tmp_path, broker_url, storage_server.url, acks_late=False, CT_VISIBILITY="120") as (app, worker):
        session = app.triggers.session(f"refused-start-{uuid.uuid4().hex[:6]}")
        with frozen(worker):
            session.fire("slow")
            set_scripting(storage_server, False)
        try:
            wait_for(lambda: "could not start t_slow#0" in worker.log.read_text(errors="replace"), 15, "the error")
            log = worker.log.read_text(errors="replace")
        finally:
            set_scripting(storage_server, True)
        assert session.instances["t_slow#0"].status is Status.SCHEDULED
    errors = [line for line in log.splitlines() if "ERROR" in line and "t_slow#0" in line]
    assert len(errors) == 1 and "no permissions to run the 'evalsha' command" in errors[0], errors
    assert "storage unreachable" not in log and "Retry in" not in log, "not retried"
    assert not runs(worker), "the body did not run"


def test_a_refused_storage_command_at_the_finish_is_not_retried(
    tmp_path: Path, broker_url: str, storage_server: RedisServer
) -> None:
    """Given a task whose finish storage refuses (not a connection error),
    the worker says so at once with the real cause, instead of retrying for
    triggers_finish_timeout (30 s here), and leaves the instance running
    for recover."""
    with fault_run(tmp_path, broker_url, storage_server.url, acks_late=False, CT_HEARTBEAT="0.5") as (app, worker):
        session = app.triggers.session(f"refused-finish-{uuid.uuid4().hex[:6]}")
        session.fire("revoke")
        try:
            wait_for(lambda: "could not finish t_revoke#0" in worker.log.read_text(errors="replace"), 15, "the error")
            log = worker.log.read_text(errors="replace")
        finally:
            set_scripting(storage_server, True)
        assert session.instances["t_revoke#0"].status is Status.RUNNING, "left for recover"

        def recovered() -> Any:  # once its lease expired: the worker no longer runs it
            found = app.triggers.recover([session.uid], older_than=0)
            return found if found and found[0].action != "skipped" else None

        actions = wait_for(recovered, 15, "the lease to expire")
    errors = [line for line in log.splitlines() if "ERROR" in line and "t_revoke#0" in line]
    assert len(errors) == 1 and "no permissions to run the 'evalsha' command" in errors[0], errors
    assert "recover" in errors[0], errors
    assert "storage unreachable" not in log, "not retried"
    assert [(a.instance, a.action) for a in actions] == [("t_revoke#0", "failed")]


def test_rabbitmq_publisher_confirms_refuse_a_message_the_broker_drops(
    tmp_path: Path, rabbitmq_server: RabbitMQServer
) -> None:
    """A broker that drops a message after the publish returned (here: a
    bounded queue that rejects publishes once full) is told to the caller:
    the fire raises DispatchError and the instance stays scheduled, to
    re-send. Celery's own producer, without confirms, loses the same
    message silently."""
    from kombu.entity import Queue

    from celery_triggers import DispatchError

    app = make_app(storage=f"sqlite:///{tmp_path / 's.sqlite3'}", runner="celery", broker_url=rabbitmq_server.url)
    queue = f"bounded-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    bounded = Queue(queue, queue_arguments={"x-max-length": 1, "x-overflow": "reject-publish"})  # type: ignore[no-untyped-call]  # kombu is untyped
    app.conf.task_queues = [bounded]
    app.triggers.configure({"t_x": {"after": ["go"], "run": "nowhere.x"}})
    assert [i.name for i in app.triggers.fire("first", "go")] == ["t_x#0"], "the queue takes one"
    with pytest.raises(DispatchError) as refused:
        app.triggers.fire("second", "go")
    assert (refused.value.instances == ["t_x#0"] and "second" in str(refused.value)) or refused.value.instances
    assert app.triggers.session("second").instance("t_x#0").status is Status.SCHEDULED, "to re-send"

    app.send_task("nowhere.x")  # Celery's producer, no confirm: returns, and the message is gone
    with app.connection_for_read() as connection:
        queued = connection.default_channel.queue_declare(queue, passive=True).message_count
    assert queued == 1, "only the first message is in the queue"


def test_a_worker_started_while_its_storage_is_down_waits_for_it_and_comes_up(tmp_path: Path, broker_url: str) -> None:
    """Given a Redis storage whose port nothing listens on, a worker started
    on it retries (one line per attempt naming the URL, password masked)
    instead of exiting; when redis-server starts on that port, the worker
    comes up and runs a cascade."""
    (tmp_path / "storage").mkdir()
    storage = RedisServer(tmp_path / "storage", password="s3cret-pw")
    worker = fault_worker(tmp_path, broker_url, storage.url, acks_late=False)
    masked = storage.url.replace("s3cret-pw", "***")

    def retrying() -> bool:
        log = worker.log.read_text(errors="replace") if worker.log.exists() else ""
        return any(masked in line and "Trying again" in line for line in log.splitlines())

    import threading

    def start_storage_once_retrying() -> None:
        wait_for(retrying, 60, "a retry line")
        storage.start()

    later = threading.Thread(target=start_storage_once_retrying, daemon=True)
    later.start()
    try:
        worker.start()  # returns once the worker says it is ready (or died)
        later.join(60)
        log = worker.log.read_text(errors="replace")
        assert "Trying again in 2.00 seconds" in log, log[-3000:]
        assert "s3cret-pw" not in log and "celery-triggers:ping" not in log
        app = producer(broker_url, storage.url)
        uid = f"late-storage-{uuid.uuid4().hex[:6]}"
        app.triggers.fire(uid, "go")
        wait_for(lambda: complete(app, [uid]), 60, "the cascade on the late storage")
    finally:
        worker.stop()
        storage.stop()
