"""The measures behind "Measured against the goals" (``python -m benchmarks``).

What :mod:`benchmarks.__main__` does not measure already: ``fire()`` beside
the original framework on the same redis-server (interleaved rounds), the
bytes per instance of 1,000 instances in one session on both, and
``fire_many`` with one event per session; then the table itself, each row
as ours / reference / ratio. Timings are medians of interleaved runs with
their spread (min-max).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from ._setup import make_app
from .original import NotMeasured, Original

#: Instances in one session for the footprint (``--quick``: 100).
FOOTPRINT = 1000
#: fire_many's goal with one event per session, events/s.
FIRE_MANY_GOAL = 20_000

Samples = list[float]
Reference = Samples | str  # the reference's samples, or why there are none


def _rate(work: Callable[[], Any], count: int) -> float:
    began = time.perf_counter()
    work()
    return count / (time.perf_counter() - began)


def fire_vs_original(
    redis_url: str, original: Original | str, runs: int, n: int
) -> dict[str, tuple[Samples, Reference]]:
    """Fires/s of ``fire()`` on ``redis://`` and of the original's ``fire()``
    on its Django cache over django-redis, the same redis-server, in
    interleaved rounds: ours, the original, ours, the original...

    *nobody listening*: a trigger no task uses, into a session that exists.
    *creates an instance*: ``left`` of a task ``after: [left, right]`` into
    a session without instances (ours: a new session; the original: a
    session whose configuration was stored first, untimed, as its docs
    start one)."""
    app = make_app(f"{redis_url}?prefix=vs-original", runner="null")
    app.triggers.configure({"t_pair": {"after": ["left", "right"], "run": "bench.sink"}})

    def idle() -> float:
        session = app.triggers.session(f"idle-{uuid.uuid4().hex}")
        session.fire("warm-up")  # the session exists, as the original's (its configuration stored)
        return _rate(lambda: [session.fire("nobody-listens") for _ in range(n)], n)

    def create() -> float:
        uids = [f"pair-{uuid.uuid4().hex}" for _ in range(n)]
        return _rate(lambda: [app.triggers.fire(uid, "left") for uid in uids], n)

    ours: dict[str, Samples] = {"idle": [], "create": []}
    theirs: dict[str, Samples] = {"idle": [], "create": []}
    reason = original if isinstance(original, str) else None
    idle(), create()  # warm-up
    for _ in range(runs):
        for case, measure in (("idle", idle), ("create", create)):
            ours[case].append(measure())
            if reason is None:
                assert isinstance(original, Original)
                try:
                    theirs[case].append(original.request(case, n=n)["rate"])
                except NotMeasured as exc:
                    reason = f"not measured ({exc})"
    return {case: (ours[case], reason or theirs[case]) for case in ours}


def fire_many_per_session(redis_url: str, runs: int, n: int) -> Samples:
    """Events/s of ``fire_many`` of ``n`` events, each into a session of its
    own (new sessions every run), nobody listening."""
    app = make_app(f"{redis_url}?prefix=fire-many-one", runner="null")
    app.triggers.configure({"t_pair": {"after": ["left", "right"], "run": "bench.sink"}})

    def run() -> float:
        batch = [(f"one-{uuid.uuid4().hex}", "nobody-listens") for _ in range(n)]
        results: list[Any] = []
        rate = _rate(lambda: results.extend(app.triggers.fire_many(batch)), n)
        failed = [r for r in results if not r.ok]
        if failed or len(results) != n:  # a fast failure is not a rate
            raise RuntimeError(f"fire_many: {len(failed)} of {n} events failed, the first: {failed[:1]}")
        return rate

    run()  # warm-up
    return [run() for _ in range(runs)]


def footprint(redis_url: str, n: int) -> dict[str, float]:
    """Bytes per instance on Redis (``MEMORY USAGE ... SAMPLES 0`` of every
    key of the session, the first instance's bytes subtracted) of ``n``
    instances in one session: scheduled as they are created, then finished
    (``update_instance_status``); and, in another session, waiting
    (unstarted, their ``after`` never fired)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    configs = {
        "scheduled": {"t_many": {"after": [], "andEvery": "item", "run": "bench.sink"}},
        "waiting": {"t_wait": {"after": ["never"], "andEvery": "item", "run": "bench.sink"}},
    }
    out: dict[str, float] = {}
    for state, config in configs.items():
        prefix = f"fp{n}-{state}-{uuid.uuid4().hex[:8]}"

        def size(prefix: str = prefix) -> int:
            return sum(client.memory_usage(k, samples=0) or 0 for k in client.scan_iter(f"{prefix}:*"))

        app = make_app(f"{redis_url}?prefix={prefix}", runner="null")
        app.triggers.configure(config)
        session = app.triggers.session("footprint")
        session.fire("item", {"i": 0})
        one = size()
        for i in range(1, n):
            session.fire("item", {"i": i})
        statuses = {str(i.status) for i in session.instances.values()}
        expected = {"scheduled"} if state == "scheduled" else {"unstarted"}
        if statuses != expected:
            raise RuntimeError(f"footprint, {state}: instances are {statuses}, not {expected}")
        out[state] = (size() - one) / (n - 1)
        if state == "scheduled":
            task = next(iter(config))
            for i in range(n):
                session.update_instance_status(f"{task}#{i}", "finished")
            out["finished"] = (size() - one) / (n - 1)
    client.close()
    return out


def original_footprint(original: Original | str, n: int) -> dict[str, float] | str:
    if isinstance(original, str):
        return original
    try:
        return original.request("footprint", n=n)
    except NotMeasured as exc:
        return f"not measured ({exc})"


# -- the table -------------------------------------------------------------------


def _cell(samples: Samples, fmt: str) -> str:
    median = statistics.median(samples)
    if len(samples) < 2:
        return format(median, fmt)
    return f"{median:{fmt}} ({min(samples):{fmt}}-{max(samples):{fmt}})"


def timed_row(label: str, ours: Samples, reference: Samples, goal: str) -> str:
    """Wall times in seconds, shown in ms; the ratio is ours / reference (lower is better)."""
    a, b = [x * 1000 for x in ours], [x * 1000 for x in reference]
    ratio = statistics.median(a) / statistics.median(b)
    return f"| {label} | {_cell(a, '.1f')} | {_cell(b, '.1f')} | {ratio:.2f} | {goal} |"


def rate_row(label: str, ours: Samples, reference: Reference | float, goal: str) -> str:
    """Rates; the ratio is ours / reference (higher is better)."""
    if isinstance(reference, str):
        return f"| {label} | {_cell(ours, '.0f')} | {reference} | - | {goal} |"
    if isinstance(reference, int | float):
        ref_cell, ref_value = f"{reference:.0f} (the goal)", float(reference)
    else:
        ref_cell, ref_value = _cell(reference, ".0f"), statistics.median(reference)
    return f"| {label} | {_cell(ours, '.0f')} | {ref_cell} | {statistics.median(ours) / ref_value:.2f} | {goal} |"


def count_row(label: str, ours: float, goal: float) -> str:
    return f"| {label} | {ours:.2f} | {goal:g} (the goal) | {ours / goal:.2f} | {goal:g} |"


def django_db_rows(
    samples: list[tuple[float, float, float]] | None, orm: list[tuple[float, float, float]] | None = None
) -> list[str]:
    """fire() on ``django-db://`` over PostgreSQL, against the same fires
    through the ORM's queries (measured in the same rounds)."""
    cases = ("nobody listening", "creating an instance", "completing a 2-trigger task, dispatch included")
    label = "django-db (PostgreSQL) fire(), {} vs the ORM's queries (fires/s)"
    if not samples:
        return [f"| {label.format(case)} | not measured (no PostgreSQL here) | - | - | >= 2x |" for case in cases]
    return [
        rate_row(label.format(case), [s[i] for s in samples], [s[i] for s in orm] if orm else "-", ">= 2x")
        for i, case in enumerate(cases)
    ]


def original_rates_row(versus: dict[str, tuple[Samples, Reference]]) -> str:
    """The original's line in the per-backend table of fire() rates."""
    label = "original framework (Django cache on django-redis, its own venv)"
    idle, create = versus["idle"][1], versus["create"][1]
    if isinstance(idle, str) or isinstance(create, str):
        return f"| {label} | {idle if isinstance(idle, str) else create} | - | - |"
    return f"| {label} | {statistics.median(idle):.0f} | {statistics.median(create):.0f} | - |"


def bytes_rows(n: int, ours: dict[str, float], theirs: dict[str, float] | str) -> list[str]:
    rows = []
    for state in ("scheduled", "finished", "waiting"):
        label = f"bytes per instance on Redis, {n:,} in one session: {state}"
        if isinstance(theirs, str):
            rows.append(f"| {label} | {ours[state]:.0f} | {theirs} | - | - |")
        else:  # the original's session is one value: Redis allocates it in size classes, hence its own bytes beside
            ratio = ours[state] / theirs[state]
            cell = f"{theirs[state]:.0f} (value: {theirs[f'{state} (stored)']:.0f})"
            rows.append(f"| {label} | {ours[state]:.0f} | {cell} | {ratio:.2f} | - |")
    return rows


def table(rows: Sequence[str]) -> list[str]:
    return [
        "| measure | ours | reference | ours / reference | goal |",
        "|---|---|---|---|---|",
        *rows,
    ]


def listing_rows(results: Any, total: int, big: int) -> list[str]:
    """The operator commands over ``total`` instances on Redis, ``big`` of
    them in one session (``benchmarks._big``), against the
    goal: wall time and peak RSS of the command as a subprocess."""
    from ._big import BIG, GOALS

    labels = {
        "sessions --limit 5": f"`celery triggers sessions --limit 5` over {total:,} instances (s, peak RSS MB)",
        f"inspect {BIG} --json": f"`celery triggers inspect --json` of a {big:,}-instance session (s, peak RSS MB)",
    }
    full = total >= 1_100_000
    goals = {"sessions --limit 5": "< 1 s, < 100 MB", f"inspect {BIG} --json": "streaming, < 100 MB"}
    rows = []
    for command in GOALS:
        goal = goals[command] if full else "- (the goal is for 1.1M instances)"
        if isinstance(results, str):  # the measurement failed: why
            rows.append(f"| {labels[command]} | {results} | - | - | {goal} |")
            continue
        samples = results.get((command, "after")) if results else None
        if not samples:
            rows.append(f"| {labels[command]} | not measured | - | - | {goal} |")
            continue
        wall, rss = statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)
        rows.append(f"| {labels[command]} | {wall:.2f} s, {rss:.0f} MB | {goal} | - | {goal} |")
    return rows
