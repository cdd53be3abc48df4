"""Drives the original Triggers framework (2.0) inside its own venv.

Run by :mod:`benchmarks.original` with the side venv's interpreter, never
imported by celery-triggers' benchmarks (it imports only the original
framework, Django and the standard library). Storage: the original's
``CacheStorageBackend`` on a Django cache over django-redis (its only
storage), values stored without expiry (``timeout=None``, as its docs
advise on Redis). Its task runner is swapped for a no-op runner, so a fire
is timed without dispatching anything, as celery-triggers' null runner.

Protocol: one JSON object per line on stdin, one JSON answer per line on
stdout. The first answer (before any request) says which versions run.
"""

from __future__ import annotations

import json
import sys
import time
import types
import uuid
from importlib import metadata
from typing import Any

#: The same shapes as celery-triggers' benchmarks, one per session: a
#: two-trigger task (a fire of ``left`` creates its instance), a task whose
#: every ``item`` is an instance that runs at once, and one whose instances wait.
CONFIGS = {
    "pair": {"t_pair": {"after": ["left", "right"], "run": "bench.sink"}},
    "scheduled": {"t_many": {"after": [], "andEvery": "item", "run": "bench.sink"}},
    "waiting": {"t_wait": {"after": ["never"], "andEvery": "item", "run": "bench.sink"}},
}


def setup(redis_url: str) -> dict[str, str]:
    import django
    from django.conf import settings

    settings.configure(
        CACHES={"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url}},
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()
    # Celery 4, which still had ``celery.task``, does not run on Python 3.11
    # (its vine 1.3 imports ``inspect.formatargspec``); Celery 5 dropped that
    # module. The original imports ``Task`` from it for its type comments
    # only, so the name is provided here.
    import celery

    shim = types.ModuleType("celery.task")
    shim.Task = celery.Task  # type: ignore[attr-defined]
    sys.modules.setdefault("celery.task", shim)

    from triggers.runners import BaseTaskRunner, task_runners

    class NullRunner(BaseTaskRunner):  # type: ignore[misc]
        """Runs nothing: the fire alone is timed (as celery-triggers' null runner)."""

        name = "null"

        def run(self, manager: Any, task_instance: Any) -> None:
            pass

    task_runners._get_cache()["null"] = NullRunner  # the registry reads entry points only
    names = ("Triggers", "Django", "django-redis", "redis", "hiredis", "python-redis-lock", "celery")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    return versions


def manager(uid: str) -> Any:
    from triggers.manager import TriggerManager
    from triggers.storages.cache import CacheStorageBackend

    class Manager(TriggerManager):  # type: ignore[misc]
        default_task_runner_name = "null"

    return Manager(CacheStorageBackend(uid, cache="default", timeout=None))


def configured(uid: str, shape: str) -> Any:
    """A session started the documented way: its configuration stored first."""
    m = manager(uid)
    m.update_configuration(CONFIGS[shape])
    return m


def rate(work: Any, count: int) -> float:
    began = time.perf_counter()
    work()
    return count / (time.perf_counter() - began)


def idle(n: int) -> dict[str, float]:
    """Fires/s of a trigger no task listens to, in one session."""
    m = configured(f"idle-{uuid.uuid4().hex}", "pair")

    def work() -> None:
        for _ in range(n):
            m.fire("nobody-listens")

    return {"rate": rate(work, n)}


def create(n: int) -> dict[str, float]:
    """Fires/s of ``left`` into sessions without instances: each creates
    the unstarted ``t_pair`` instance (sessions configured beforehand, untimed)."""
    managers = [configured(f"pair-{uuid.uuid4().hex}", "pair") for _ in range(n)]

    def work() -> None:
        for m in managers:
            m.fire("left")

    return {"rate": rate(work, n)}


def footprint(n: int, redis_url: str) -> dict[str, float]:
    """Bytes per instance (``MEMORY USAGE`` of every key of the session) of
    ``n`` instances in one session: scheduled at once, then finished; and
    waiting (unstarted) in another session."""
    import redis

    client = redis.Redis.from_url(redis_url)

    def size(uid: str) -> int:
        return sum(client.memory_usage(k, samples=0) or 0 for k in client.scan_iter(f"*{uid}*"))

    def stored(uid: str) -> int:
        """The bytes of the session's value itself (Redis allocates it in size classes)."""
        return sum(client.strlen(k) for k in client.scan_iter(f"*{uid}*") if client.type(k) == b"string")

    out: dict[str, float] = {}
    for state in ("scheduled", "waiting"):
        (task,) = CONFIGS[state]
        uid = f"fp-{state}-{uuid.uuid4().hex}"
        m = configured(uid, state)
        m.fire("item", {"i": 0})
        one, one_stored = size(uid), stored(uid)
        for i in range(1, n):
            m.fire("item", {"i": i})
        statuses = {i.status for i in manager(uid).storage.instances.values()}
        expected = {"scheduled"} if state == "scheduled" else {"unstarted"}
        if statuses != expected:
            raise RuntimeError(f"{state}: instances are {statuses}, not {expected}")
        out[state] = (size(uid) - one) / (n - 1)
        out[f"{state} (stored)"] = (stored(uid) - one_stored) / (n - 1)
        if state == "scheduled":
            for i in range(n):
                m.update_instance_status(f"{task}#{i}", "finished")
            out["finished"] = (size(uid) - one) / (n - 1)
            out["finished (stored)"] = (stored(uid) - one_stored) / (n - 1)
    client.close()
    return out


def main() -> None:
    redis_url = sys.argv[1]
    print(json.dumps({"versions": setup(redis_url)}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "idle":
                answer: dict[str, Any] = idle(request["n"])
            elif op == "create":
                answer = create(request["n"])
            elif op == "footprint":
                answer = footprint(request["n"], redis_url)
            else:
                answer = {"error": f"unknown op {op!r}"}
        except Exception as exc:  # reported to the benchmark, which prints "not measured"
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
