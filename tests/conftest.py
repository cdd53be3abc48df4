"""Shared fixtures: Celery apps on the eager runner, storage backends, and a
real ``celery worker`` subprocess on a serverless broker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from celery_triggers import StorageBackend, Triggers, resolve_storage

from .django_project import configure_django
from .servers import PostgresServer, RedisCluster, RedisServer

ROOT = Path(__file__).resolve().parent.parent
#: A migrated user project with its own unittest suite, run in a subprocess
#: by test_migration.py (it configures Django its own way).
collect_ignore = ["migrated"]


def make_app(storage: str = "memory://", runner: str = "eager", **conf: Any) -> Celery:
    """A fresh Celery app with the extension, isolated from ``current_app``."""
    app = Celery("ct", set_as_current=False, broker="memory://")
    app.conf.update(triggers_storage=storage, triggers_runner=runner, task_ignore_result=True, **conf)
    Triggers(app)
    return app


class _Trap:
    """Celery's testing trap (``celery.contrib.testing.app.Trap``), quiet:
    any use of ``current_app`` raises, naming the attribute."""

    def __getattr__(self, name: str) -> Any:
        if name in ("_is_coroutine", "__func__"):
            return None
        raise RuntimeError(f"test depends on celery's current_app (current_app.{name})")


@pytest.fixture(autouse=True)
def _app_trap(request: pytest.FixtureRequest) -> Iterator[None]:
    """No test (and no code under test) may fall back to Celery's current
    or default app: they are a trap for the whole test, in every thread, as
    ``celery.contrib.testing.app.set_trap`` sets it. A test that needs a
    current app says so with ``setup_default_app(app)`` + ``app.set_current()``."""
    if request.node.get_closest_marker("current_app_ok"):
        yield
        return
    from celery import _state

    trap = _Trap()
    previous_default, previous_tls = _state.default_app, _state._tls

    class NonTLS:
        current_app = trap

    _state.set_default_app(trap)  # a stand-in that raises
    _state._tls = NonTLS()  # one value for every thread, as set_trap does
    try:
        yield
    finally:
        _state._tls = previous_tls
        _state.set_default_app(previous_default)


@pytest.fixture
def app() -> Celery:
    return make_app()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A real three-master Redis Cluster on loopback ports."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer | None]:
    """A throwaway PostgreSQL cluster, or None where PostgreSQL is not
    installed (under CI=true that is a failure)."""
    try:
        server = PostgresServer()
    except pytest.skip.Exception:
        yield None
        return
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def django_caches(
    redis_server: RedisServer, postgres: PostgresServer | None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Django configured once per test process (spawned children configure
    the same from ``CT_DJANGO``): LocMem and RedisCache caches, an SQLite
    database and, where installed, a PostgreSQL one ("pg"), migrated."""
    spec = {
        "redis": redis_server.url,
        "sqlite": str(tmp_path_factory.mktemp("django") / "db.sqlite3"),
        "pg": postgres.settings() if postgres is not None else None,
    }
    os.environ["CT_DJANGO"] = json.dumps(spec)
    os.environ.setdefault("CT_BROKER", redis_server.url.rsplit("/", 1)[0] + "/1")  # tests.django_app's broker
    caches = configure_django()
    from django.core.management import call_command

    for alias in ("default", "pg") if postgres is not None else ("default",):
        call_command("migrate", database=alias, verbosity=0)
    return caches


def fresh_django_db(request: pytest.FixtureRequest, alias: str) -> str:
    """``django-db://<alias>`` with no session stored (tests share the
    database of the test process)."""
    if alias == "pg" and request.getfixturevalue("postgres") is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    from celery_triggers.contrib.django.models import Deadline, Session

    Session.objects.using(alias).all().delete()
    Deadline.objects.using(alias).all().delete()
    return f"django-db://{alias}"


def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


#: Every storage backend; each proves the same contract.
BACKENDS = ["memory", "sqlite", "redis", "redis-cluster", "django-locmem", "django-redis", "django-db", "django-db-pg"]
#: Backends shared by several processes.
SHARED_BACKENDS = ["sqlite", "redis", "redis-cluster", "django-redis", "django-db", "django-db-pg"]


def storage_url_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'triggers.sqlite3'}"
    if kind in ("redis", "redis-cluster"):
        server = request.getfixturevalue("redis_server" if kind == "redis" else "redis_cluster")
        return f"{server.url}?prefix={unique_prefix()}"
    request.getfixturevalue("django_caches")
    if kind.startswith("django-db"):
        return fresh_django_db(request, "pg" if kind.endswith("-pg") else "default")
    alias = "default" if kind == "django-locmem" else "redis"
    return f"django-cache://{alias}?prefix={unique_prefix()}&lock_timeout=2"


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return storage_url_for(request.param, request, tmp_path)


@pytest.fixture
def backend(storage_url: str) -> Iterator[StorageBackend]:
    storage = resolve_storage(storage_url)
    yield storage
    storage.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Worker:
    """A real ``celery -A <app> worker`` subprocess (default: tests.worker_app)."""

    def __init__(self, data: Path, app: str = "tests.worker_app", **env: str):
        self.data = data
        self.app = app
        self.log = data / "worker.log"
        self.env = {**os.environ, "CT_TEST_DATA": str(data), "PYTHONPATH": str(ROOT), **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.data / "broker").mkdir(parents=True, exist_ok=True)
        self._ready_mark = self.log.read_text(errors="replace").count("ready.") if self.log.exists() else 0
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.app,
            "worker",
            "--loglevel=INFO",
            "--concurrency=2",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(
            lambda: self.log.read_text(errors="replace").count("ready.") > self._ready_mark or self._dead(),
            60,
            "worker start",
        )
        assert self.alive, "worker died at start-up:\n" + self.log.read_text(errors="replace")

    @property
    def node(self) -> str:
        """Its node name (``celery@<host>``), from its ready line."""
        found = re.findall(r"\] (\S+@\S+) ready\.$", self.log.read_text(errors="replace"), re.MULTILINE)
        assert found, "the worker has not said it is ready"
        return str(found[-1])

    def _dead(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def children(self) -> list[int]:
        """PIDs of the pool processes (children of the main process)."""
        assert self.proc is not None
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def kill(self) -> None:
        """SIGKILL the main process and its pool processes (by PID)."""
        assert self.proc is not None
        pids = self.children()
        self.proc.kill()
        self.proc.wait()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def discard(self) -> None:
        """SIGKILL its process group (the main process and its pool), for a
        worker whose tests are over: a warm shutdown would only wait for
        Celery's pool to stop (a second or two)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown; Celery stops its pool
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def _worker(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Worker]:
    """One worker for the session; tests use fresh session UIDs."""
    data = tmp_path_factory.mktemp("worker")
    os.environ["CT_TEST_DATA"] = str(data)  # before tests.worker_app is imported
    os.environ["CT_BROKER"] = redis_server.url.rsplit("/", 1)[0] + "/1"
    import tests.worker_app  # noqa: F401

    w = Worker(data)
    w.start()
    yield w
    w.discard()


@pytest.fixture
def worker(_worker: Worker) -> Iterator[Worker]:
    """The session's worker, checked after each test: if it died, the test
    fails with the end of its log, and the next test gets a new one."""
    if not _worker.alive:
        _worker.start()
    yield _worker
    if not _worker.alive:
        tail = _worker.log.read_text(errors="replace")[-4000:]
        _worker.proc = None
        _worker.start()
        pytest.fail(f"the worker died during this test (restarted for the next); its log ends:\n{tail}")


@pytest.fixture
def worker_app(worker: Worker) -> Celery:
    import tests.worker_app

    assert Path(tests.worker_app.DATA) == worker.data, "tests.worker_app was imported before the worker fixture"
    return tests.worker_app.app


#: The examples the tests run, by the name of the fixture that hands a run to
#: tests: ``python -m <module> <args> --json``, and the variable that names
#: the run's data folder.
EXAMPLES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "survey_example": ("examples.survey", ("--seed", "7"), "SURVEY_DATA"),
    "shop_example": ("examples.django_shop", ("--seed", "1"), "SHOP_DATA"),
}


class ExampleRun:
    """An example run as a user runs it (it starts its own worker, fires,
    waits until idle and stops its worker), started at once, in a process
    group of its own; :meth:`result` waits for it to exit."""

    def __init__(self, module: str, args: Sequence[str], data_variable: str, data: Path):
        self.data = data
        environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        self.env = {**environ, data_variable: str(data)}
        self.stdout, self.stderr = data / "example.stdout", data / "example.stderr"
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, *args, "--json"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def result(self, timeout: float = 180) -> tuple[str, dict[str, Any]]:
        """Its output and the instances it printed last (one JSON line),
        once it exited 0."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"the example ran for more than {timeout} s: {self.output()}") from None
        assert self.proc.returncode == 0, f"the example exited {self.proc.returncode}: {self.output()}"
        stdout = self.stdout.read_text()
        return stdout, json.loads(stdout.strip().splitlines()[-1])

    def output(self) -> str:
        """What it printed so far, stdout then stderr."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    @property
    def session(self) -> str:
        """The UID of the session it ran (its ``session <uid>:`` line)."""
        stdout, _ = self.result()
        return next(line.split()[1].rstrip(":") for line in stdout.splitlines() if line.startswith("session "))

    def stop(self) -> None:
        """Kill it and its worker if it is still running."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="session", autouse=True)
def _example_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ExampleRun]]:
    """The example runs the selected tests read, each started once, at the
    session's first test: a run mostly waits (its worker polls a folder, and
    its warm shutdown takes seconds), so the tests before its readers run
    meanwhile. Nothing starts when no selected test reads a run."""
    selected = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    runs: dict[str, ExampleRun] = {}
    for name in EXAMPLES:
        if name in selected:
            _example(name, runs, tmp_path_factory)
    yield runs
    for run in runs.values():
        run.stop()


def _example(name: str, runs: dict[str, ExampleRun], tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """The session's run of example ``name``, started now if not yet."""
    if name not in runs:
        module, args, data_variable = EXAMPLES[name]
        runs[name] = ExampleRun(module, args, data_variable, tmp_path_factory.mktemp(name))
    return runs[name]


@pytest.fixture
def survey_example(_example_runs: dict[str, ExampleRun], tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """``python -m examples.survey --seed 7 --json``, run once per session."""
    return _example("survey_example", _example_runs, tmp_path_factory)


@pytest.fixture
def shop_example(_example_runs: dict[str, ExampleRun], tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """``python -m examples.django_shop --seed 1 --json``, run once per session."""
    return _example("shop_example", _example_runs, tmp_path_factory)
