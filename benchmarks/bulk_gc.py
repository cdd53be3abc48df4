"""What the garbage collector costs a bulk fire: ``python -m benchmarks.bulk_gc``.

On its own redis-server (loopback), ``fire_many`` of 10,000 events over
1,000 sessions (nobody listens, the fire's own cost) under four collector
settings, interleaved: Python's defaults, the collector disabled,
``gc.freeze()`` after a warm-up, and a first threshold of 50,000. The
process's collector settings are restored after each; medians of
``--runs`` rounds (default 5). ``fire_many`` pauses the collector itself
while a batch runs (``celery_triggers.producer.collector``),
so the rows now differ by what happens around the batch only.

``--new-sessions``: each event into a session of its own, new every round
(the "one event per session" goal of ``python -m benchmarks``), under
Python's defaults only; run it with ``PYTHONPATH`` set to each of two
checkouts to compare them.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._setup import machine, make_app, redis_server


@contextmanager
def defaults() -> Iterator[None]:
    yield


@contextmanager
def disabled() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def frozen() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def high_threshold() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 events over 100 sessions (a smoke test)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-sessions", action="store_true", help="each event into a new session of its own")
    args = parser.parse_args(argv)
    n = 1_000 if args.quick else 10_000
    if args.new_sessions:
        return {"one event per new session": new_sessions(n, args.runs)}

    settings = {
        "Python's defaults": defaults,
        "collector disabled": disabled,
        "gc.freeze() after warm-up": frozen,
        "gc.set_threshold(50_000, 20, 20)": high_threshold,
    }
    rates: dict[str, list[float]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
        app = make_app(f"{url}?prefix=gc", runner="null")
        events = [(f"gc-{i % (n // 10)}", "nobody-listens", {"i": i}) for i in range(n)]
        app.triggers.fire_many(events)  # warm-up: the sessions exist and this process knows them
        for _ in range(args.runs):
            for name, setting in settings.items():
                with setting():
                    began = time.perf_counter()
                    assert all(r.ok for r in app.triggers.fire_many(events))
                    rates[name].append(n / (time.perf_counter() - began))
        app.triggers.storage.close()
    medians = {name: statistics.median(r) for name, r in rates.items()}
    base = medians["Python's defaults"]
    print(f"fire_many of {n:,} events over {n // 10:,} sessions on Redis, medians of {args.runs} rounds; {machine()}")
    print("| collector | events/s | vs defaults |")
    print("|---|---|---|")
    for name, rate in medians.items():
        print(f"| {name} | {rate:.0f} | {rate / base:.2f}x |")
    return medians


def new_sessions(n: int, runs: int) -> float:
    """Events/s of ``fire_many`` of ``n`` events, each into a new session."""
    from .goals import fire_many_per_session

    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
        rates = fire_many_per_session(url, runs, n)
    rate = statistics.median(rates)
    print(f"fire_many of {n:,} events, each into a new session, on Redis: {rate:.0f} events/s")
    print(f"(median of {runs} batches: {', '.join(f'{r:.0f}' for r in rates)}); {machine()}")
    return rate


if __name__ == "__main__":
    main()
