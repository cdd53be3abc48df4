"""Operator commands at scale: ``python -m benchmarks.operations``.

On every backend (Redis: its own redis-server on loopback):

* listing 10,000 sessions (each with one instance) the way
  ``celery triggers sessions --json`` does (the UIDs, then every session's
  instances, counted by status);
* ``inspect`` of one session holding 5,000 instances (``session_view``, what
  ``inspect --json`` prints).

Each is timed in-process (the command's work without the interpreter's
start-up); medians of ``--runs`` runs (default 5).

``--big``: the real commands as subprocesses over a Redis storage of 1.1
million instances, wall time and peak RSS (see :mod:`benchmarks._big`).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from celery_triggers.cli.views import session_view, sessions_view

from ._setup import machine, make_app, median_ms, optional_redis, storage_urls, timed


def listing(url: str, sessions: int, runs: int) -> float:
    app = make_app(url)
    app.triggers.configure({"t_one": {"after": ["go", "later"], "run": "bench.one"}})
    for n in range(sessions):
        app.triggers.fire(f"list-{n:05d}", "go")
    storage = app.triggers.storage

    def run() -> None:
        rows = sessions_view(storage, storage.sessions())
        assert len(rows) >= sessions

    return median_ms(timed(run, runs))


def inspect(url: str, instances: int, runs: int) -> float:
    app = make_app(url)
    app.triggers.configure({"t_many": {"after": ["never"], "andEvery": "item", "run": "bench.many"}})
    session = app.triggers.session("inspect-big")
    for n in range(instances):
        session.fire("item", {"n": n})

    def run() -> None:
        assert session_view(session)["instances"] == instances

    return median_ms(timed(run, runs))


def main(argv: list[str] | None = None) -> list[tuple[str, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 sessions and 100 instances (a smoke test)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big", action="store_true", help="1.1M instances on Redis, the commands as subprocesses")
    parser.add_argument("--code", type=Path, help="--big: also run the commands on this checkout's package")
    parser.add_argument("--legacy", action="store_true", help="--big: then again without the kept summaries")
    parser.add_argument("--scale", type=float, default=1.0, help="--big: fraction of the 1.1M instances (a quick look)")
    args = parser.parse_args(argv)
    if args.big:
        from ._big import run

        sessions, big = max(1, round(10_000 * args.scale)), max(1, round(100_000 * args.scale))
        run(args.runs, args.code, args.legacy, sessions, 100, big)
        return []
    sessions, instances = (200, 100) if args.quick else (10_000, 5_000)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with optional_redis(Path(tmp)) as redis_url:
            urls = storage_urls(Path(tmp), redis_url, "ops")
            for name, url in urls.items():
                list_ms = listing(url.replace("ops", "ops-list"), sessions, args.runs)
                inspect_ms = inspect(url.replace("ops", "ops-inspect"), instances, args.runs)
                rows.append((name, list_ms, inspect_ms))
    print(f"operator commands, medians of {args.runs} runs (ms); {machine()}")
    print(f"| backend | list {sessions:,} sessions | inspect a {instances:,}-instance session |")
    print("|---|---|---|")
    for name, list_ms, inspect_ms in rows:
        print(f"| {name} | {list_ms:.0f} | {inspect_ms:.0f} |")
    return rows


if __name__ == "__main__":
    main()
