"""What the lifecycle costs: ``python -m benchmarks.lifecycle``.

1. Leases: a real ``celery worker`` (threads pool, 100 threads) runs 100
   trigger tasks that block, on a Redis storage of its own; the storage
   commands that change data are counted on the server (``INFO
   commandstats``) over a quiet window: the heartbeat's writes per second
   for 100 running instances, at a 1 s interval (the default 10 s writes a
   tenth of that), and the bytes of one heartbeat record.
2. Publisher confirms: ``fire()`` of a trigger that schedules one task, on
   RabbitMQ, with confirms (the default on AMQP) and without, interleaved:
   the cost per fire of waiting for the broker's acknowledgement.

Medians of ``--runs`` runs; prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from ._setup import machine, make_app

ROOT = Path(__file__).resolve().parent.parent

APP = """
import os, time
from celery import Celery
from celery_triggers import Triggers, trigger_task

app = Celery("bench_leases")
app.conf.update(broker_url=os.environ["BENCH_BROKER"], triggers_storage=os.environ["BENCH_STORAGE"],
                task_ignore_result=True, worker_prefetch_multiplier=1, triggers_heartbeat_interval=1,
                triggers_recover_interval=0)
Triggers(app)

@trigger_task(after=["hold"], name="t_hold")
@app.task(name="bench.hold")
def hold():
    time.sleep(float(os.environ.get("BENCH_HOLD", "60")))
"""


def _calls(client: Any) -> dict[str, int]:
    """Script calls (round trips) and version bumps (commits: each bumps its session's version once)."""
    stats = {k.split("|")[0].removeprefix("cmdstat_"): int(v["calls"]) for k, v in client.info("commandstats").items()}
    return {"round trips": stats.get("evalsha", 0), "writes": stats.get("incr", 0)}


def leases(tmp: Path, window: float) -> dict[str, float]:
    import redis

    from celery_triggers.core.leases import HEARTBEATS
    from tests.servers import RedisServer

    broker, store = RedisServer(tmp / "broker"), RedisServer(tmp / "storage")
    for server in (broker, store):
        server.directory.mkdir(parents=True)
        server.start()
    (tmp / "bench_leases_app.py").write_text(APP)
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}",
        "BENCH_BROKER": broker.url,
        "BENCH_STORAGE": store.url,
        "BENCH_HOLD": str(window + 30),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench_leases_app", "worker", "--pool=threads", "--concurrency=100",
         "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel=WARNING"],
        cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        app = make_app(store.url, runner="celery", broker_url=broker.url)
        app.triggers.configure({"t_hold": {"after": ["hold"], "run": "bench.hold"}})
        for n in range(100):
            app.triggers.fire(f"lease-{n}", "hold")
        client = redis.Redis.from_url(store.url)
        deadline = time.monotonic() + 60
        while (
            sum(
                1
                for n in range(100)
                if app.triggers.session(f"lease-{n}").instance("t_hold#0").status.value == "running"
            )
            < 100
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the 100 tasks did not all start")
            time.sleep(0.2)
        time.sleep(2)  # past the starts and the first heartbeats
        before, start = _calls(client), time.monotonic()
        time.sleep(window)
        after, elapsed = _calls(client), time.monotonic() - start
        heartbeat_keys = app.triggers.storage.keys(HEARTBEATS)
        size = int(client.memory_usage(heartbeat_keys[0]) or 0)
        return {
            "writes per second (1 s interval)": (after["writes"] - before["writes"]) / elapsed,
            "storage round trips per second (1 s interval; the other: the epoch check)": (
                after["round trips"] - before["round trips"]
            )
            / elapsed,
            "bytes of the heartbeat record (Redis MEMORY USAGE)": size,
        }
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        for server in (broker, store):
            server.stop()


def confirms(tmp: Path, runs: int, fires: int) -> dict[str, float]:
    from tests.servers import RabbitMQServer

    server = RabbitMQServer(tmp / "rabbitmq")
    server.start()
    try:
        app = make_app(f"sqlite:///{tmp / 'confirms.sqlite3'}", runner="celery", broker_url=server.url)
        app.triggers.configure({"t_one": {"after": ["go"], "run": "bench.nowhere"}})
        runner = app.triggers.runner("celery")
        samples: dict[str, list[float]] = {"with confirms": [], "without": []}
        for _ in range(runs):
            for label, confirm in (("with confirms", True), ("without", False)):
                runner._amqp = confirm
                start = time.perf_counter()
                for _ in range(fires):
                    app.triggers.fire(f"c-{uuid.uuid4().hex}", "go")
                samples[label].append((time.perf_counter() - start) / fires * 1000)
        return {label: statistics.median(values) for label, values in samples.items()}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ct-bench-lifecycle-") as tmp:
        base = Path(tmp)
        print(f"# Lifecycle costs ({machine()})\n")
        lease = leases(base / "leases", 3.0 if args.quick else 20.0)
        print("| 100 running instances, one worker | value |\n|---|---|")
        for key, value in lease.items():
            print(f"| {key} | {value:.2f} |")
        cost = confirms(base / "confirms", 1 if args.quick else args.runs, 20 if args.quick else 300)
        ratio = cost["with confirms"] / cost["without"]
        print("\n| `fire()` that sends one message, RabbitMQ | ms per fire (median) |\n|---|---|")
        for key, value in cost.items():
            print(f"| {key} | {value:.3f} |")
        print(f"| ratio | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
