"""What the benchmarks share: servers, apps and timing helpers."""

from __future__ import annotations

import platform
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Celery

from celery_triggers import Triggers
from celery_triggers.producer.runners import Dispatch, TaskRunner, register_runner


class NullRunner(TaskRunner):
    """Dispatches nothing: isolates the cost of the fire itself."""

    name = "null"

    def dispatch(self, items: list[Dispatch]) -> None:
        pass


register_runner("null", NullRunner)


_POSTGRES: list[Any] = []


def postgres_settings() -> dict[str, Any] | None:
    """A throwaway PostgreSQL cluster for this process (started once, stopped
    at exit) as a Django ``DATABASES`` entry; None without PostgreSQL."""
    if not _POSTGRES:
        import atexit

        from tests.servers import PostgresServer

        try:
            server = PostgresServer()
        except BaseException:
            _POSTGRES.append(None)
            return None
        server.start()
        atexit.register(server.stop)
        _POSTGRES.append(server)
    server = _POSTGRES[0]
    return None if server is None else server.settings()


def configure_django(redis_url: str | None) -> list[str]:
    """Django for the benchmarks, once per process: the caches (Redis when
    given), an SQLite database and, where installed, PostgreSQL ("pg"),
    migrated; returns the database aliases."""
    import tempfile

    import django
    from django.conf import settings

    if not settings.configured:
        caches: dict[str, Any] = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        if redis_url:
            caches["redis"] = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
        databases: dict[str, Any] = {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(Path(tempfile.mkdtemp(prefix="ct-bench-")) / "django.sqlite3"),
                "OPTIONS": {"timeout": 30},
            }
        }
        pg = postgres_settings()
        if pg is not None:
            databases["pg"] = pg
        settings.configure(
            CACHES=caches, DATABASES=databases, INSTALLED_APPS=["celery_triggers.contrib.django"], USE_TZ=True
        )
        django.setup()
        from django.core.management import call_command

        for alias in databases:
            call_command("migrate", database=alias, verbosity=0)
    return list(settings.DATABASES)


def django_db_urls() -> dict[str, str]:
    from django.conf import settings

    names = {"default": "django-db (sqlite)", "pg": "django-db (postgresql)"}
    return {names[alias]: f"django-db://{alias}" for alias in settings.DATABASES if alias in names}


#: The PostgreSQL row measured through the ORM's queries, as databases
#: other than PostgreSQL and SQLite take them (and every database did
#: before the statements were written out): the reference of its goal.
ORM_PATH = "django-db (postgresql, ORM queries)"


@contextmanager
def orm_queries(active: bool = True) -> Iterator[None]:
    """``django-db://`` through the ORM's queries while the block runs."""
    if not active:
        yield
        return
    from celery_triggers.contrib.django import sql

    written_out = sql.statements
    sql.statements = lambda alias, connection: None
    try:
        yield
    finally:
        sql.statements = written_out


def storage_urls(tmp: Path, redis_url: str | None, tag: str) -> dict[str, str]:
    urls = {"memory": "memory://", "sqlite": f"sqlite:///{tmp / f'{tag}.sqlite3'}"}
    configure_django(redis_url)
    if redis_url:
        urls["redis"] = f"{redis_url}?prefix=bench-{tag}"
        urls["django-cache (redis)"] = f"django-cache://redis?prefix=bench-{tag}&timeout=none"
    return {**urls, **django_db_urls()}


def make_app(storage: str, runner: str = "null", **conf: Any) -> Celery:
    app = Celery("bench", set_as_current=False)
    app.conf.update(triggers_storage=storage, triggers_runner=runner, task_ignore_result=True, **conf)
    Triggers(app)
    return app


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Wall time of each of ``repeat`` calls, in seconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def machine() -> str:
    import os

    return (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"
    )


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """The URL of a redis-server of the benchmark's own on loopback, running
    while the block runs (data in ``tmp``)."""
    from tests.servers import RedisServer

    server = RedisServer(tmp)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def optional_redis(tmp: Path) -> Iterator[str | None]:
    """:func:`redis_server`, or None when no redis-server is on PATH."""
    if not shutil.which("redis-server"):
        yield None
        return
    with redis_server(tmp) as url:
        yield url
