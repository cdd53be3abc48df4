"""celery-triggers against plain Celery, side by side: ``python -m benchmarks``.

Starts two redis-servers on loopback (broker + result backend; storage, so
storage commands can be counted alone) and one real ``celery worker``
process (prefork, 2 processes), then runs:

1. cascade: 50 trigger tasks each ``after`` the previous vs a Celery
   ``chain`` of the same 50 tasks; and 1,000 sessions of a three-task
   cascade vs 1,000 three-task chains;
2. fan-in: 20 parallel trigger tasks + one ``after`` all of them vs
   ``chord(group(20), callback)`` on the Redis result backend;
3. ``fire()`` throughput per storage backend: a trigger nothing listens to,
   and one that completes a two-trigger task (dispatch to the broker
   included);
4. one task end to end with and without the plugin, and the storage
   commands and round trips per instance, counted on the storage server;
5. footprint: bytes per instance and per 100-instance session (Redis
   ``MEMORY USAGE``, SQLite file growth);
6. against the goals (:mod:`benchmarks.goals`): the rows above as ours /
   reference / ratio, with ``fire()`` and the bytes per instance of the
   original framework measured on the same redis-server (``--original
   PATH``: installed from that source checkout into a side venv, see
   :mod:`benchmarks.original`; without it those rows say "not measured");
7. the operator commands of the goals over 1.1 million instances on a
   Redis of their own (``sessions --limit 5``, ``inspect --json`` of a
   100,000-instance session: wall time and peak RSS, as subprocesses;
   :mod:`benchmarks._big`).

Each case runs several times; the tables give medians and ratios.
``--quick`` makes a tiny run (the test suite's smoke test).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import goals
from ._setup import ORM_PATH, configure_django, django_db_urls, machine, make_app, median_ms, orm_queries
from .original import Original, default_venvs
from .original import start as start_original

ROOT = Path(__file__).resolve().parent.parent


class Bench:
    def __init__(self, tmp: Path, quick: bool, runs: int):
        from tests.servers import RedisServer

        self.quick, self.runs, self.tmp = quick, runs, tmp
        self.broker = RedisServer(tmp / "broker-data")
        self.store = RedisServer(tmp / "storage-data")
        for server in (self.broker, self.store):
            server.directory.mkdir()
            server.start()
        self.chain_length = 10 if quick else 50
        self.fan = 5 if quick else 20
        self.sessions = [20] if quick else [300, 1000]
        os.environ.update(
            BENCH_BROKER=f"redis://127.0.0.1:{self.broker.port}/0",
            BENCH_BACKEND=f"redis://127.0.0.1:{self.broker.port}/1",
            BENCH_SIGNAL=f"redis://127.0.0.1:{self.broker.port}/2",
            BENCH_STORAGE=f"redis://127.0.0.1:{self.store.port}/0?prefix=bench",
            BENCH_CHAIN=str(self.chain_length),
            BENCH_FAN=str(self.fan),
        )
        from . import app as bench_app

        self.mod = bench_app
        self.app = bench_app.app
        self.signal = bench_app._signal
        import redis

        self.store_client = redis.Redis(port=self.store.port)
        self.worker: subprocess.Popen[bytes] | None = None

    # -- worker ---------------------------------------------------------------
    def start_worker(self) -> None:
        log = self.tmp / "worker.log"
        with open(log, "wb") as out:
            self.worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "benchmarks.app",
                    "worker",
                    "--concurrency=2",
                    "-Q",
                    "celery",
                    "--loglevel=WARNING",
                    "--without-mingle",
                    "--without-gossip",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # Ready when a plain task round-trips.
        key = uuid.uuid4().hex
        self.mod.done.apply_async(kwargs={"key": key})
        if self.signal.blpop([f"done:{key}"], timeout=60) is None:
            raise RuntimeError("worker did not start:\n" + log.read_text())

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(timeout=60)
        # Close what talks to the servers before stopping them: a result consumer left
        # subscribed reconnects at interpreter exit (Celery 5.3-5.5) and the process hangs.
        gc.collect()
        consumer = getattr(self.app.backend, "result_consumer", None)
        if consumer is not None:
            consumer.stop()
        self.app.close()
        self.signal.close()
        self.store_client.close()
        self.broker.stop()
        self.store.stop()

    # -- timing helpers ---------------------------------------------------------
    def _wait(self, key: str) -> None:
        if self.signal.blpop([f"done:{key}"], timeout=120) is None:
            raise RuntimeError(f"run {key} did not finish")

    def timed(self, start: Callable[[str], Any], count: int = 1) -> float:
        key = uuid.uuid4().hex
        began = time.perf_counter()
        start(key)
        for _ in range(count):
            self._wait(key)
        return time.perf_counter() - began

    def compare(
        self, plain: Callable[[str], Any], triggers: Callable[[str], Any], count: int = 1, runs: int | None = None
    ) -> tuple[list[float], list[float]]:
        self.timed(plain, count), self.timed(triggers, count)  # warm up both
        a, b = [], []
        for _ in range(runs or self.runs):  # interleaved, so drift hits both alike
            a.append(self.timed(plain, count))
            b.append(self.timed(triggers, count))
        return a, b

    # -- cases --------------------------------------------------------------------
    def cascade(self) -> tuple[list[float], list[float]]:
        from celery import chain

        noop, done = self.mod.noop, self.mod.done

        def plain(key: str) -> None:
            chain(*[noop.si() for _ in range(self.chain_length - 1)], done.si(key=key)).apply_async()

        return self.compare(plain, lambda key: self.app.triggers.fire(key, "go"))

    def many(self, sessions: int) -> tuple[list[float], list[float]]:
        """Many sessions of a three-task cascade vs as many plain chains."""
        from celery import chain

        noop, done = self.mod.noop, self.mod.done

        def plain(key: str) -> None:
            for _ in range(sessions):
                chain(noop.si(), noop.si(), done.si(key=key)).apply_async()

        def triggers(key: str) -> None:
            for i in range(sessions):
                self.app.triggers.fire(f"{key}/{i}", "go3")

        return self.compare(plain, triggers, count=sessions, runs=max(3, self.runs // 2))

    def fan_in(self) -> tuple[list[float], list[float]]:
        from celery import chord

        results: list[Any] = []

        def plain(key: str) -> None:
            results.append(
                chord([self.mod.noop_result.si() for _ in range(self.fan)], self.mod.done.s(key=key)).apply_async()
            )

        timings = self.compare(plain, lambda key: self.app.triggers.fire(key, "fan"))
        for result in results:  # the chords (header and body) finished long ago: forget them now,
            result.forget()  # while the backend is up, so that no result object outlives the servers
        results.clear()
        gc.collect()
        return timings

    def single(self) -> tuple[list[float], list[float]]:
        return self.compare(
            lambda key: self.mod.done.apply_async(kwargs={"key": key}),
            lambda key: self.app.triggers.fire(key, "single"),
        )

    def round_trips(self) -> dict[str, float]:
        """Storage commands and round trips per trigger task, counted with
        MONITOR on the storage server: a command outside MULTI/EXEC is one
        round trip, a MULTI..EXEC block is one, commands run by a Lua script
        are none (they happen inside the script's own round trip)."""
        n = 5 if self.quick else 50
        probe = make_app(os.environ["BENCH_STORAGE"], runner="null")
        probe.triggers.configure({"t_single": {"after": ["single"], "run": "bench.done"}})

        def count(work: Callable[[], Any]) -> tuple[float, float]:
            return self._count(work, n)

        def end_to_end() -> None:
            for _ in range(n):
                self.timed(lambda key: self.app.triggers.fire(key, "single"))

        def fire_only() -> None:
            for _ in range(n):
                probe.triggers.fire(uuid.uuid4().hex, "single")

        def cascade() -> None:
            self.timed(lambda key: self.app.triggers.fire(key, "go"))

        commands, trips = count(end_to_end)
        _, fire_trips = count(fire_only)
        _, cascade_trips = self._count(cascade, self.chain_length)
        return {
            "storage commands per trigger task (fire + worker, Lua-internal included)": commands,
            "storage round trips per trigger task (fire + worker)": trips,
            "round trips in fire() (producer)": fire_trips,
            "round trips in the worker (start + finish)": trips - fire_trips,
            f"round trips per task in a cascade of {self.chain_length} (one fire for all)": cascade_trips,
        }

    def _count(self, work: Callable[[], Any], n: int) -> tuple[float, float]:
        """Storage commands and round trips (see :meth:`round_trips`) per
        unit of ``work`` that does ``n`` units."""
        events = self._monitor(work)
        trips = 0
        in_multi: set[str] = set()
        for client, command in events:
            if client == "lua":
                continue
            if command == "MULTI":
                in_multi.add(client)
            elif command == "EXEC":
                in_multi.discard(client)
                trips += 1
            elif client not in in_multi:
                trips += 1
        return len(events) / n, trips / n

    def _monitor(self, work: Callable[[], Any]) -> list[tuple[str, str]]:
        import threading

        import redis

        events: list[tuple[str, str]] = []
        client = redis.Redis(port=self.store.port)
        ready = threading.Event()
        stop = threading.Event()

        def listen() -> None:
            with client.monitor() as monitor:
                ready.set()
                for event in monitor.listen():
                    command = event["command"].split(" ", 1)[0].upper()
                    if command == "PING" and stop.is_set():
                        return
                    address = "lua" if event.get("client_type") == "lua" else str(event.get("client_address"))
                    address += "" if address == "lua" else f":{event.get('client_port')}"
                    events.append((address, command))

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        ready.wait(10)
        time.sleep(0.05)  # MONITOR is registered once its first reply is read
        work()
        stop.set()
        self.store_client.ping()
        thread.join(10)
        return [e for e in events if e[1] != "PING"]

    def throughput(self) -> dict[str, list[tuple[float, float, float]]]:
        """Fires/s per backend, (nothing listens, creates, completes) per round."""
        n = 50 if self.quick else 500
        configure_django(f"redis://127.0.0.1:{self.store.port}/1")
        urls = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{self.tmp / 'throughput.sqlite3'}",
            "redis": f"redis://127.0.0.1:{self.store.port}/0?prefix=tp",
            "django-cache (redis)": "django-cache://redis?prefix=tp&timeout=none",
            "django-cache (redis, cache API + lock)": "django-cache://redis?prefix=tpa&timeout=none&lock=add",
            **django_db_urls(),
        }
        if "django-db (postgresql)" in urls:  # the same database through the ORM's queries (other databases' path)
            urls[ORM_PATH] = urls["django-db (postgresql)"]
        sessions = {}
        for name, url in urls.items():
            app = make_app(
                url,
                runner="celery",
                broker_url=os.environ["BENCH_BROKER"],
                task_routes={"bench.sink": {"queue": "bench-sink"}},
            )
            app.triggers.configure({"t_pair": {"after": ["left", "right"], "run": "bench.sink"}})
            sessions[name] = app.triggers.session(f"tp-{uuid.uuid4().hex[:6]}")
            sessions[name].fire("warm-up")
        rates: dict[str, list[tuple[float, float, float]]] = {name: [] for name in urls}
        for _ in range(self.runs):  # rounds over the backends, so that the machine's noise hits them alike
            for name, session in sessions.items():
                with orm_queries(name == ORM_PATH):
                    rates[name].append(self._rates(session, n))
        self.signal.connection_pool.reset()
        import redis

        redis.Redis(port=self.broker.port, db=0).delete("bench-sink")
        return rates

    @staticmethod
    def _rates(session: Any, n: int) -> tuple[float, float, float]:
        """fire()s/s of ``session``'s app: nobody listening, creating, completing."""
        app = session.app
        began = time.perf_counter()
        for _ in range(n):
            session.fire("nobody-listens")
        idle = n / (time.perf_counter() - began)
        uids = [f"pair-{uuid.uuid4().hex[:8]}" for _ in range(n)]
        began = time.perf_counter()
        for uid in uids:
            app.triggers.fire(uid, "left")  # a new session: creates an unstarted t_pair instance
        creating = n / (time.perf_counter() - began)
        began = time.perf_counter()
        for uid in uids:
            app.triggers.fire(uid, "right")  # completes t_pair: commit + dispatch
        completing = n / (time.perf_counter() - began)
        return idle, creating, completing

    def bulk(self) -> dict[str, float]:
        """Redis: ``fire_many`` of events over many sessions and ``afire``
        from concurrent coroutines, against single fires in a loop (fires/s,
        nobody listening: the fire's own cost)."""
        import asyncio

        n = 200 if self.quick else 10_000
        app = make_app(f"redis://127.0.0.1:{self.store.port}/0?prefix=bulk", runner="null")
        app.triggers.configure({"t_pair": {"after": ["left", "right"], "run": "bench.sink"}})  # a task, unfired
        events = [(f"bulk-{i % (n // 10)}", "nobody-listens", {"i": i}) for i in range(n)]

        def rate(work: Callable[[], Any], count: int) -> float:
            """Median fires/s of interleaved runs (each case runs once per round)."""
            began = time.perf_counter()
            work()
            return count / (time.perf_counter() - began)

        def fire_many() -> None:
            assert all(r.ok for r in app.triggers.fire_many(events))

        async def concurrent(total: int, width: int, sessions: int = 100) -> None:
            for start in range(0, total, width):
                await asyncio.gather(
                    *(
                        app.triggers.afire(f"bulk-a{i % sessions}", "nobody-listens")
                        for i in range(start, start + width)
                    )
                )

        total = 500 if self.quick else 5_000
        # Each event completes a one-trigger task in a new session: a message per event (Celery runner).
        sending = make_app(
            f"redis://127.0.0.1:{self.store.port}/0?prefix=bulk-send",
            runner="celery",
            broker_url=os.environ["BENCH_BROKER"],
            task_routes={"bench.sink": {"queue": "bench-sink"}},
        )
        sending.triggers.configure({"t_one": {"after": ["go"], "run": "bench.sink"}})
        m = 100 if self.quick else 2_000

        def dispatching(fire_many: bool) -> None:
            batch = [(f"send-{uuid.uuid4().hex[:10]}", "go") for _ in range(m)]
            if fire_many:
                assert all(r.ok for r in sending.triggers.fire_many(batch))
            else:
                for uid, trigger in batch:
                    sending.triggers.fire(uid, trigger)

        cases: dict[str, tuple[Callable[[], Any], int]] = {
            "loop": (lambda: [app.triggers.fire(*event) for event in events], n),
            "many": (fire_many, n),
            "afire": (lambda: asyncio.run(concurrent(total, 100)), total),
            "afire_few": (lambda: asyncio.run(concurrent(total, 100, sessions=10)), total),
            "send_loop": (lambda: dispatching(False), m),
            "send_many": (lambda: dispatching(True), m),
        }
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(max(3, self.runs)):
            for name, (work, count) in cases.items():
                rates[name].append(rate(work, count))
        import redis

        redis.Redis(port=self.broker.port, db=0).delete("bench-sink")
        loop_rate, many_rate, afire_rate, afire_few_rate, send_loop, send_many = (
            statistics.median(r) for r in rates.values()
        )
        counted = [(f"bulk-m{i % 100}", "nobody-listens", {"i": i}) for i in range(1_000)]
        many_commands, _ = self._count(lambda: app.triggers.fire_many(counted), len(counted))
        loop_commands, loop_trips = self._count(lambda: [app.triggers.fire(*e) for e in counted], len(counted))
        many_trips = self._sends(lambda: app.triggers.fire_many(counted)) / len(counted)
        afire_trips = self._sends(lambda: asyncio.run(concurrent(200, 100))) / 200
        return {
            f"fire() in a loop, {n} events over {n // 10} sessions (fires/s)": loop_rate,
            f"fire_many, the same {n} events (fires/s)": many_rate,
            "afire, 100 concurrent coroutines over 100 sessions (fires/s)": afire_rate,
            "afire, 100 concurrent coroutines over 10 sessions (fires/s)": afire_few_rate,
            f"fire() in a loop, {m} events each sending a message (fires/s)": send_loop,
            f"fire_many, {m} events each sending a message (fires/s)": send_many,
            "storage commands per event: fire() in a loop (MONITOR, 1,000 events over 100 sessions)": loop_commands,
            "storage commands per event: fire_many (MONITOR, the same 1,000 events)": many_commands,
            "round trips per event: fire() in a loop (MONITOR)": loop_trips,
            "round trips per event: fire_many (pipelines sent, the same 1,000 events)": many_trips,
            "round trips per event: afire (pipelines sent, 200 events over 100 sessions)": afire_trips,
        }

    def _sends(self, work: Callable[[], Any]) -> int:
        """Round trips to the storage server as the client makes them: one
        per command or pipeline it sends (MONITOR shows a pipeline's
        commands one by one, so it cannot tell)."""
        import redis.asyncio.connection
        import redis.connection

        sends = [0]
        port = self.store.port
        patched = []
        for cls in (redis.connection.Connection, redis.asyncio.connection.Connection):
            real = cls.send_packed_command

            def counting(conn: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
                if conn.port == port:
                    sends[0] += 1
                return _real(conn, *args, **kwargs)

            patched.append((cls, real))
            cls.send_packed_command = counting  # type: ignore[method-assign,assignment]
        try:
            work()
        finally:
            for cls, real in patched:
                cls.send_packed_command = real  # type: ignore[method-assign]
        return sends[0]

    def footprint(self) -> dict[str, float]:
        """Bytes per instance (Redis ``MEMORY USAGE`` of a session's keys,
        SQLite file growth) of 100 ``andEvery`` instances, scheduled and
        then finished."""
        import redis

        n = 100
        config = {"t_many": {"after": [], "andEvery": "item", "run": "bench.sink"}}
        out: dict[str, float] = {}
        redis_urls = {
            "redis": (f"redis://127.0.0.1:{self.store.port}/0?prefix=fp", "fp:*"),
            "django-cache (redis)": ("django-cache://redis?prefix=fpd&timeout=none", "*fpd:*"),
            "django-cache (redis, cache API + lock)": (
                "django-cache://redis?prefix=fpa&timeout=none&lock=add",
                "*fpa:*",
            ),
        }
        for name, (url, pattern) in redis_urls.items():
            client = redis.Redis(port=self.store.port, db=0 if name == "redis" else 1)

            def size(pattern: str = pattern, client: Any = client) -> int:
                return sum(client.memory_usage(k) or 0 for k in client.scan_iter(pattern))

            app = make_app(url, runner="null")
            app.triggers.configure(config)
            session = app.triggers.session("footprint")
            session.fire("item", {"i": 0})
            one = size()
            for i in range(1, n):
                session.fire("item", {"i": i})
            out[f"{name}: per scheduled instance"] = (size() - one) / (n - 1)
            for i in range(n):
                session.update_instance_status(f"t_many#{i}", "finished")
            out[f"{name}: per finished instance"] = (size() - one) / (n - 1)
            client.close()

        import sqlite3

        path = self.tmp / "footprint.sqlite3"
        sq = make_app(f"sqlite:///{path}", runner="null")
        sq.triggers.configure(config)
        sq.triggers.session("empty").fire("nobody-listens")

        def file_size() -> int:
            with sqlite3.connect(path) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return path.stat().st_size

        empty = file_size()
        for i in range(n):
            sq.triggers.session("footprint").fire("item", {"i": i})
        out["sqlite: per scheduled instance (file growth)"] = (file_size() - empty) / n
        return out


def _ratio_row(name: str, plain: list[float], triggers: list[float], target: str) -> str:
    a, b = median_ms(plain), median_ms(triggers)
    spread = f"{min(triggers) * 1000:.1f}-{max(triggers) * 1000:.1f}"
    return f"| {name} | {a:.1f} | {b:.1f} ({spread}) | {b / a:.2f} | {target} |"


def _revision() -> str:
    """The commit measured (and whether the work tree differs from it)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "not a git checkout"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True)
    return head.stdout.strip() + (" (work tree changed)" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument(
        "--untracked", action="store_true", help="triggers_track_started=False on the worker (starts write nothing)"
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per case (default 15, --quick 2)")
    parser.add_argument(
        "--original",
        type=Path,
        default=None,
        metavar="PATH",
        help="a checkout of the original framework (Triggers 2.0; a work tree or a bare git repository): "
        "installed into a side venv and measured beside ours",
    )
    parser.add_argument(
        "--original-venvs",
        type=Path,
        default=default_venvs(),
        metavar="DIR",
        help="where the original's venv is made and kept between runs (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    runs = args.runs or (2 if args.quick else 15)
    os.environ["BENCH_TRACK_STARTED"] = "0" if args.untracked else "1"
    load, revision = os.getloadavg(), _revision()  # the code measured: read before anything else changes
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), args.quick, runs)
        store = f"redis://127.0.0.1:{bench.store.port}"
        original: Original | str = "not measured"
        try:
            original = start_original(args.original, args.original_venvs, f"{store}/3")
            bench.start_worker()
            cascade = bench.cascade()
            many = {n: bench.many(n) for n in bench.sessions}
            fan_in = bench.fan_in()
            single = bench.single()
            trips = bench.round_trips()
            throughput = bench.throughput()
            bulk = bench.bulk()
            footprint = bench.footprint()
            n_fire, n_many = (50, 500) if args.quick else (500, 10_000)
            versus = goals.fire_vs_original(f"{store}/0", original, runs, n_fire)
            per_session = goals.fire_many_per_session(f"{store}/0", runs, n_many)
            n_fp = 100 if args.quick else goals.FOOTPRINT
            footprint_n = goals.footprint(f"{store}/0", n_fp)
            footprint_original = goals.original_footprint(original, n_fp)
        finally:
            if isinstance(original, Original):
                original.close()
            bench.stop()
    # The listing goals: a Redis storage of its own filled with 1.1M instances (about 15 s), each command a
    # subprocess (python -m benchmarks.operations --big times more of them).
    sessions, big = (100, 1_000) if args.quick else (10_000, 100_000)
    from ._big import COMMANDS, GOALS
    from ._big import run as run_big

    timed_commands = {g: COMMANDS[g] for g in GOALS}
    try:
        listings: Any = run_big(1 if args.quick else 3, None, False, sessions, 100, big, timed_commands)
    except Exception as exc:  # the rows say so; the rest of the report is still printed
        listings = f"failed: {exc}"[:200]
    reference = original.describe() if isinstance(original, Original) else original
    print(f"celery-triggers {revision} vs plain Celery and {reference};")
    print(f"{machine()}; load average {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end;")
    print(f"{time.monotonic() - began:.0f} s; Redis broker/backend/storage on loopback;")
    print(f"one celery worker (prefork, 2 processes); {runs} interleaved runs per case, medians;")
    print(f"triggers_track_started={not args.untracked}\n")
    print("## Measured against the goals\n")
    rows = [
        goals.timed_row(
            f"cascade of {bench.chain_length} vs Celery chain of {bench.chain_length} (ms)", *cascade[::-1], "<= 1.15"
        ),
        *(
            goals.timed_row(
                f"{n} sessions x 3-task cascade vs {n} chains, producer's fire included (ms)", *many[n][::-1], "<= 1.15"
            )
            for n in bench.sessions
        ),
        goals.timed_row(f"fan-in: {bench.fan} tasks then a join vs chord (ms)", *fan_in[::-1], "<= 1.0"),
        goals.count_row(
            "storage round trips per task (fire + start + finish)",
            trips["storage round trips per trigger task (fire + worker)"],
            2,
        ),
        goals.count_row(
            f"storage round trips per task in a cascade of {bench.chain_length} (start + finish; one fire)",
            trips[f"round trips per task in a cascade of {bench.chain_length} (one fire for all)"],
            2,
        ),
        *goals.bytes_rows(n_fp, footprint_n, footprint_original),
        goals.rate_row("fire() on Redis, nobody listening, vs the original (fires/s)", *versus["idle"], ">= 2x"),
        goals.rate_row("fire() on Redis, creating an instance, vs the original (fires/s)", *versus["create"], ">= 2x"),
        goals.rate_row(
            f"fire_many, one event per session ({n_many:,} sessions; events/s)",
            per_session,
            goals.FIRE_MANY_GOAL,
            f">= {goals.FIRE_MANY_GOAL:,}/s",
        ),
        *goals.django_db_rows(throughput.get("django-db (postgresql)"), throughput.get(ORM_PATH)),
        *goals.listing_rows(listings, sessions * 100 + big, big),
    ]
    print("\n".join(goals.table(rows)))
    print("\n## Details\n")
    print("| case | plain Celery (ms) | celery-triggers (ms, min-max) | ratio | target |")
    print("|---|---|---|---|---|")
    print(_ratio_row(f"cascade of {bench.chain_length} tasks vs chain", *cascade, "<= 1.15"))
    for n in bench.sessions:
        print(_ratio_row(f"{n} sessions of a 3-task cascade vs chains", *many[n], "<= 1.15"))
    print(_ratio_row(f"fan-in {bench.fan} + 1 vs chord", *fan_in, "<= 1.0"))
    print(_ratio_row("one task end to end", *single, "-"))
    a, b = statistics.median(single[0]), statistics.median(single[1])
    print(f"\nadded latency per trigger task: {(b - a) * 1000:.2f} ms (median, one task end to end)")
    per_hop = (statistics.median(cascade[1]) - statistics.median(cascade[0])) / bench.chain_length * 1000
    print(f"added latency per cascade hop: {per_hop:.2f} ms\n")
    print(
        "| fire() throughput (fires/s) | nothing listens | creates an instance (new session) "
        "| completes a 2-trigger task, dispatch included |"
    )
    print("|---|---|---|---|")
    for name, samples in throughput.items():
        idle, creating, completing = (statistics.median(r[i] for r in samples) for i in range(3))
        print(f"| {name} | {idle:.0f} | {creating:.0f} | {completing:.0f} |")
    print(goals.original_rates_row(versus))
    print("\n| bulk and async firing (Redis; nobody listens unless a row says) | value |")
    print("|---|---|")
    for name, value in bulk.items():
        print(f"| {name} | {value:.0f} |" if value >= 100 else f"| {name} | {value:.3g} |")
    print("\n| storage work per trigger task (Redis, counted with MONITOR) | value |")
    print("|---|---|")
    for name, value in trips.items():
        print(f"| {name} | {value:.1f} |")
    print("\n| footprint (100 instances) | bytes |")
    print("|---|---|")
    for name, value in footprint.items():
        print(f"| {name} | {value:.0f} |")


if __name__ == "__main__":
    main()
