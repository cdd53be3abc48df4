"""Smoke tests of the benchmark commands: they run and print their tables.

Run as subprocesses, exactly as documented, so their process-wide set-up
(Django settings, servers, a worker) stays out of the test process. No
timing is asserted: speed is measured by the benchmarks, not by tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT
from .servers import require

pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def row(out: str, label: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(f"| {label}"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_storage_growth_quick_prints_a_row_per_backend() -> None:
    require("redis-server")  # the table has Redis rows
    out = run("benchmarks.storage_growth", "--quick")
    assert "| backend | 10 | 50 |" in out
    for backend in ("memory", "sqlite", "redis", "django-cache (redis)"):
        for case in ("ran", "waiting"):
            cells = row(out, f"{backend} ({case}) |")
            assert float(cells[1]) > 0 and float(cells[2]) > 0 and cells[-1].endswith("x")


def test_side_by_side_quick_prints_every_table(tmp_path: Path) -> None:
    require("redis-server")
    nowhere = tmp_path / "no-checkout"
    out = run("benchmarks", "--quick", "--original", str(nowhere), "--original-venvs", str(tmp_path / "venvs"))
    goals = (
        "cascade of 10 vs Celery chain of 10 (ms)",
        "20 sessions x 3-task cascade vs 20 chains",
        "fan-in: 5 tasks then a join vs chord (ms)",
    )
    for label in goals:
        ours, reference, ratio = row(out, label)[1:4]
        assert float(ours.split()[0]) > 0 and float(reference.split()[0]) > 0 and float(ratio) > 0
    per_task, goal, ratio = row(out, "storage round trips per task (fire + start + finish)")[1:4]
    assert goal == "2 (the goal)" and float(ratio) == pytest.approx(float(per_task) / 2, abs=0.01)
    in_cascade = float(row(out, "storage round trips per task in a cascade of 10")[1])
    # A start and a finish per task, one fire for the whole cascade (3.0 if each task paid a fire); MONITOR also
    # counts the worker's own sweeps and heartbeats in that window, hence the room above 2.1.
    assert 2.0 <= in_cascade < 2.8, "a start and a finish per task, one fire for the whole cascade"
    many, goal, ratio = row(out, "fire_many, one event per session (500 sessions; events/s)")[1:4]
    assert float(many.split()[0]) > 0 and goal == "20000 (the goal)" and float(ratio) > 0
    for state in ("scheduled", "finished", "waiting"):
        ours, reference, ratio = row(out, f"bytes per instance on Redis, 100 in one session: {state}")[1:4]
        assert float(ours) > 0 and reference == f"not measured (no source at {nowhere})" and ratio == "-"
    for case in ("nobody listening", "creating an instance"):
        ours, reference = row(out, f"fire() on Redis, {case}, vs the original (fires/s)")[1:3]
        assert float(ours.split()[0]) > 0 and reference.startswith("not measured (no source at")
    assert row(out, "original framework")[1].startswith("not measured"), "no figure this run did not measure"
    assert "measured earlier" not in out
    assert not (tmp_path / "venvs").exists(), "nothing to install without a source"
    labels = ("cascade of 10 tasks vs chain", "20 sessions of a 3-task cascade vs chains", "fan-in 5 + 1 vs chord")
    for label in (*labels, "one task end to end"):
        plain, triggers, ratio = row(out, label)[1:4]
        assert float(plain) > 0 and float(triggers.split()[0]) > 0 and float(ratio) > 0
    backends = ("memory", "sqlite", "redis", "django-cache (redis)", "django-cache (redis, cache API + lock)")
    for backend in (*backends, "django-db (sqlite)", "django-db (postgresql)"):
        idle, creating, completing = row(out, f"{backend} |")[1:4]
        assert float(idle) > 0 and float(creating) > 0 and float(completing) > 0
    assert float(row(out, "fire_many, the same 200 events (fires/s)")[1]) > 0
    assert float(row(out, "afire, 100 concurrent coroutines over 100 sessions (fires/s)")[1]) > 0
    assert float(row(out, "afire, 100 concurrent coroutines over 10 sessions (fires/s)")[1]) > 0
    assert float(row(out, "fire_many, 100 events each sending a message (fires/s)")[1]) > 0
    loop_trips = float(row(out, "round trips per event: fire() in a loop")[1])
    assert float(row(out, "round trips per event: fire_many")[1]) < loop_trips, "one commit per session, not per event"
    trips = row(out, "storage round trips per trigger task")
    assert float(trips[1]) >= 2, "a trigger task needs the fire's commit and the worker's start and finish"
    for backend in ("redis", "django-cache (redis)", "django-cache (redis, cache API + lock)"):
        scheduled = float(row(out, f"{backend}: per scheduled instance |")[1])
        finished = float(row(out, f"{backend}: per finished instance |")[1])
        # compact records (format 2): a record finished by status can be smaller than a scheduled one
        assert scheduled > 0 and finished > 0, backend
    assert float(row(out, "sqlite: per scheduled instance (file growth)")[1]) > 0


def test_bulk_gc_quick_prints_a_row_per_collector_setting() -> None:
    require("redis-server")
    out = run("benchmarks.bulk_gc", "--quick", "--runs", "1")
    for setting in ("Python's defaults", "collector disabled", "gc.freeze() after warm-up", "gc.set_threshold"):
        rate, ratio = row(out, setting)[1:3]
        assert float(rate) > 0 and ratio.endswith("x")
    assert row(out, "Python's defaults")[2] == "1.00x"
    out = run("benchmarks.bulk_gc", "--quick", "--runs", "2", "--new-sessions")
    found = re.search(r"each into a new session, on Redis: (\d+) events/s", out)
    assert found is not None and int(found.group(1)) > 0, out


def test_operations_quick_prints_a_row_per_backend() -> None:
    require("redis-server")
    out = run("benchmarks.operations", "--quick", "--runs", "1")
    assert "| backend | list 200 sessions | inspect a 100-instance session |" in out
    for backend in ("memory", "sqlite", "redis", "django-cache (redis)"):
        listed, inspected = row(out, f"{backend} |")[1:3]
        assert float(listed) > 0 and float(inspected) > 0


def test_observe_quick_prints_a_row_per_configuration() -> None:
    require("redis-server")
    out = run("benchmarks.observe", "--quick")
    for config in ("off", "installed, nothing on", "events on", "OpenTelemetry SDK on", "metrics on"):
        fire, _, hop, _ = row(out, f"{config} |")[1:5]
        assert float(fire) > 0 and float(hop) > 0


def test_deadlines_quick_prints_the_sweep_and_the_fire_cost_per_backend() -> None:
    require("redis-server")
    out = run("benchmarks.deadlines", "--quick")
    for backend in ("memory", "sqlite", "redis", "django-cache (redis)", "django-cache (locmem)"):
        cells = row(out, f"{backend}, 1,000 pending |")
        assert float(cells[1]) > 0 and float(cells[4]) > 0
        cells = row(out, f"{backend} |")
        assert float(cells[1]) > 0 and float(cells[2]) > 0
    assert row(out, "redis, 1,000 pending |")[2] != "-"  # round trips counted on Redis


def test_keys_quick_prints_a_row_per_backend() -> None:
    require("redis-server")
    out = run("benchmarks.keys", "--quick")
    for backend in ("memory", "sqlite", "redis", "django-cache (redis)", "django-db (sqlite)"):
        plain, keyed, ratio, duplicate = row(out, f"{backend} |")[1:5]
        assert float(plain) > 0 and float(keyed) > 0 and ratio.endswith("x") and float(duplicate) > 0
    assert row(out, "redis |")[5] == "1.00 / 1.00", "a key costs the Redis fire no round trip"
