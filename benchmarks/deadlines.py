"""Deadlines (``within``): ``python -m benchmarks.deadlines``.

Per storage backend:

1. the deadline sweep with 100,000 deadlines pending (indexed, not yet
   due): a worker's sweep when nothing is due (what it does every second:
   the lock, then one read of the index), and a sweep that abandons 100
   due instances (each: one optimistic commit, its ``on_timeout`` fired),
   per due instance; each beside the same with 1,000 pending, to show that
   the cost follows the due entries, not the pending ones; round trips
   counted on the storage (Redis commands on the server, SQL statements);
2. the cost ``within`` adds to a fire: the first trigger of a two-trigger
   task into a new session, with and without ``within``, interleaved,
   medians (the null runner: no broker).

Starts its own redis-server when one is on PATH. ``--quick``: tiny sizes.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Celery

from celery_triggers.worker.deadlines import DeadlineSweeper

from ._setup import machine, make_app, median_ms, optional_redis, storage_urls

CONFIGS = {
    "t_ship": {"after": ["paid", "shipped"], "run": "bench.ship", "within": 3600, "onTimeout": "shipmentLate"},
    "t_plain": {"after": ["ordered", "packed"], "run": "bench.ship"},
    "t_late": {"after": ["shipmentLate"], "run": "bench.late"},
}


class Counter:
    """Round trips to the storage while counting: on Redis, the requests
    the client sends (a pipeline or a script call is one), and the
    commands the server ran (scripts' commands included); on SQL, the
    statements run (Django's queries, SQLite's statements)."""

    def __init__(self, app: Celery, url: str):
        self.app, self.url = app, url

    @contextmanager
    def counting(self) -> Iterator[list[int]]:
        """``[round trips, server commands]`` (commands: Redis only, else -1)."""
        box = [0, -1]
        backend: Any = self.app.triggers.storage
        client = getattr(backend, "client", None) or getattr(getattr(backend, "redis", None), "client", None)
        if client is not None:
            import redis.connection

            original = redis.connection.AbstractConnection.send_packed_command

            def send(conn: Any, command: Any, check_health: bool = True) -> None:
                box[0] += 1
                original(conn, command, check_health)

            before = int(client.info("stats")["total_commands_processed"])
            redis.connection.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
            try:
                yield box
            finally:
                redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
            box[1] = int(client.info("stats")["total_commands_processed"]) - before - 1  # the first INFO
        elif self.url.startswith("sqlite"):
            conn: sqlite3.Connection = backend._connect()
            conn.set_trace_callback(lambda _: box.__setitem__(0, box[0] + 1))
            yield box
            conn.set_trace_callback(None)
        elif self.url.startswith("django-db"):
            from django.db import connections
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connections[backend.alias]) as queries:
                yield box
            box[0] = len(queries.captured_queries)
        else:
            box[0] = -1
            yield box


def fill(app: Celery, pending: int, due_at: float) -> None:
    """``pending`` index entries due at ``due_at`` and after (in batches)."""
    backend = app.triggers.storage
    for start in range(0, pending, 1000):
        uid = f"pending-{uuid.uuid4().hex[:8]}"
        backend.index_deadlines(uid, {f"t_ship#{n}": due_at + n for n in range(min(1000, pending - start))})


def sweep_case(url: str, pending: int, due: int, repeat: int) -> dict[str, float]:
    app = make_app(url)
    app.triggers.configure(CONFIGS)
    counter = Counter(app, url)
    start = time.time()
    fill(app, pending, start + 36_000)
    sweeper = DeadlineSweeper(app.triggers, 1.0, "bench")
    idle, idle_trips = [], [0, -1]
    for _ in range(repeat):
        with counter.counting() as trips:
            t = time.perf_counter()
            assert sweeper.sweep() == []
            idle.append(time.perf_counter() - t)
        idle_trips = list(trips)
    sessions = [app.triggers.session(f"due-{uuid.uuid4().hex[:8]}") for _ in range(due)]
    for session in sessions:
        session.fire("paid")
    fired = time.time()
    app.triggers.clock = lambda: fired + 3601  # every one of them is due, none of the pending
    with counter.counting() as trips:
        t = time.perf_counter()
        outcomes = sweeper.sweep()
        busy = time.perf_counter() - t
    assert sum(o.outcome == "abandoned" for o in outcomes) == due, outcomes[:3]
    return {
        "idle_ms": median_ms(idle),
        "idle_trips": idle_trips[0],
        "idle_commands": idle_trips[1],
        "per_due_ms": busy * 1000 / due,
        "per_due_trips": trips[0] / due,
        "per_due_commands": trips[1] / due if trips[1] >= 0 else -1,
    }


def fire_case(url: str, samples: int) -> dict[str, float]:
    app = make_app(url)
    app.triggers.configure(CONFIGS)
    counter = Counter(app, url)
    timings: dict[str, list[float]] = {"t_ship": [], "t_plain": []}
    trips: dict[str, list[int]] = {}
    for n in range(samples):
        for task, trigger in (
            (("t_ship", "paid"), ("t_plain", "ordered"))
            if n % 2
            else (
                ("t_plain", "ordered"),
                ("t_ship", "paid"),
            )
        ):
            session = app.triggers.session(f"fire-{uuid.uuid4().hex[:10]}")
            with counter.counting() as box:
                t = time.perf_counter()
                session.fire(trigger)
                timings[task].append(time.perf_counter() - t)
            trips[task] = list(box)
    plain, within = median_ms(timings["t_plain"]), median_ms(timings["t_ship"])
    return {
        "plain_ms": plain,
        "within_ms": within,
        "ratio": within / plain,
        "plain_trips": trips["t_plain"][0],
        "within_trips": trips["t_ship"][0],
        "plain_commands": trips["t_plain"][1],
        "within_commands": trips["t_ship"][1],
    }


def table(rows: list[tuple[str, dict[str, Any]]], columns: list[tuple[str, str, Callable[[Any], str]]]) -> None:
    print("| backend | " + " | ".join(title for title, _, _ in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, row in rows:
        print(f"| {name} | " + " | ".join(fmt(row[key]) for _, key, fmt in columns) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args(argv)
    pendings = (100, 1000) if args.quick else (1000, 100_000)
    due, repeat, samples = (5, 3, 10) if args.quick else (100, 15, 300)

    with tempfile.TemporaryDirectory() as tmp:
        with optional_redis(Path(tmp)) as redis_url:
            urls = {"memory": "memory://", **storage_urls(Path(tmp), redis_url, "deadlines")}
            from django.conf import settings

            # LocMemCache culls past 300 keys by default: room for the sessions and the buckets.
            settings.CACHES["default"]["OPTIONS"] = {"MAX_ENTRIES": 10_000_000}
            urls["django-cache (locmem)"] = "django-cache://default?prefix=bench-deadlines&timeout=none"
            sweeps: list[tuple[str, dict[str, Any]]] = []
            fires: list[tuple[str, dict[str, Any]]] = []
            for name, url in urls.items():
                for pending in pendings:
                    sweeps.append((f"{name}, {pending:,} pending", sweep_case(url, pending, due, repeat)))
                fires.append((name, fire_case(url, samples)))
    ms, count = (lambda v: f"{v:.2f}"), (lambda v: "-" if v < 0 else f"{v:.3g}")
    for _, row in fires:
        for kind in ("trips", "commands"):
            row[kind] = f"{count(row['plain_' + kind])} / {count(row['within_' + kind])}"
    print(f"deadline sweep; {due} due instances; {repeat} idle sweeps, median; {machine()}")
    table(
        sweeps,
        [
            ("idle sweep (ms)", "idle_ms", ms),
            ("round trips", "idle_trips", count),
            ("Redis commands", "idle_commands", count),
            ("per due instance (ms)", "per_due_ms", ms),
            ("round trips per due", "per_due_trips", count),
            ("Redis commands per due", "per_due_commands", count),
        ],
    )
    print()
    print(f"first fire into a new session, {samples} each, interleaved, medians; null runner")
    table(
        fires,
        [
            ("without within (ms)", "plain_ms", ms),
            ("with within (ms)", "within_ms", ms),
            ("ratio", "ratio", ms),
            ("round trips without / with", "trips", str),
            ("Redis commands without / with", "commands", str),
        ],
    )


if __name__ == "__main__":
    main()
