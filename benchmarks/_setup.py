"""What the benchmarks share: servers, apps and timing helpers."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery

from celery_triggers import Triggers
from celery_triggers.runners import Dispatch, TaskRunner, register_runner


class NullRunner(TaskRunner):
    """Dispatches nothing: isolates the cost of the fire itself."""

    name = "null"

    def dispatch(self, items: list[Dispatch]) -> None:
        pass


register_runner("null", NullRunner)


def configure_django(redis_url: str) -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            CACHES={
                "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
                "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url},
            },
            USE_TZ=True,
        )
        django.setup()


def storage_urls(tmp: Path, redis_url: str | None, tag: str) -> dict[str, str]:
    urls = {"memory": "memory://", "sqlite": f"sqlite:///{tmp / f'{tag}.sqlite3'}"}
    if redis_url:
        configure_django(redis_url)
        urls["redis"] = f"{redis_url}?prefix=bench-{tag}"
        urls["django-cache (redis)"] = f"django-cache://redis?prefix=bench-{tag}&timeout=none"
    return urls


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
