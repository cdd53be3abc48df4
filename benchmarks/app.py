"""The Celery app the benchmarks run on a real worker.

Broker, result backend and storage come from the environment (set by
``python -m benchmarks``). Trigger workflows mirror the plain-Celery ones:

* cascade: ``t_c0`` after ``go``, ``t_cN`` after ``t_c(N-1)``; the last one
  runs ``bench.done``;
* fan-in: ``t_p0..t_p19`` after ``go``, ``t_join`` after all of them;
* many: ``t_m0 -> t_m1 -> t_m2`` in each of many sessions.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery

from celery_triggers import Triggers, current_context

CHAIN = int(os.environ.get("BENCH_CHAIN", "50"))
FAN = int(os.environ.get("BENCH_FAN", "20"))

app = Celery("bench")
app.conf.update(
    broker_url=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/0"),
    result_backend=os.environ.get("BENCH_BACKEND", "redis://127.0.0.1:6379/1"),
    triggers_storage=os.environ.get("BENCH_STORAGE", "memory://"),
    triggers_track_started=os.environ.get("BENCH_TRACK_STARTED", "1") == "1",
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
Triggers(app)
_signal = redis.Redis.from_url(os.environ.get("BENCH_SIGNAL", "redis://127.0.0.1:6379/2"))


@app.task(name="bench.noop")
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@app.task(name="bench.noop_result", ignore_result=False)
def noop_result(*args: Any, **kwargs: Any) -> None:
    """The same no-op, storing its result: a chord's header needs results."""
    return None


@app.task(name="bench.done")
def done(*args: Any, key: str | None = None, **kwargs: Any) -> None:
    """Signal completion on a Redis list the benchmark waits on (BLPOP)."""
    if key is None:  # a trigger task: the session UID, up to a "/" (batches of sessions)
        key = current_context().session_uid.split("/", 1)[0]
    _signal.rpush(f"done:{key}", b"1")


@app.task(name="bench.sink")
def sink(*args: Any, **kwargs: Any) -> None:
    """Routed to a queue no worker consumes: measures dispatch only."""


configs: dict[str, Any] = {}
for n in range(CHAIN):
    configs[f"t_c{n}"] = {
        "after": [f"t_c{n - 1}" if n else "go"],
        "run": "bench.done" if n == CHAIN - 1 else "bench.noop",
    }
for n in range(FAN):
    configs[f"t_p{n}"] = {"after": ["fan"], "run": "bench.noop"}
configs["t_join"] = {"after": [f"t_p{n}" for n in range(FAN)], "run": "bench.done"}
configs["t_m0"] = {"after": ["go3"], "run": "bench.noop"}
configs["t_m1"] = {"after": ["t_m0"], "run": "bench.noop"}
configs["t_m2"] = {"after": ["t_m1"], "run": "bench.done"}
configs["t_single"] = {"after": ["single"], "run": "bench.done"}
configs["t_pair"] = {"after": ["left", "right"], "run": "bench.sink"}
configs["t_many"] = {"after": [], "andEvery": "item", "run": "bench.sink"}
app.triggers.configure(configs)
app.conf.task_routes = {"bench.sink": {"queue": "bench-sink"}}
