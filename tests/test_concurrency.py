"""No lost update: processes firing into one SQLite file at the same instant."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from celery_triggers import Status, trigger_task

from .conftest import make_app

ROUNDS = 50


def build(storage: str, runs_file: Path) -> Any:
    app = make_app(storage)

    @trigger_task(after=["left", "right"], name="t_join")
    @app.task(shared=False, name="tests.join")
    def join() -> str:
        from celery_triggers import current_context

        line = f"{current_context().session_uid} {os.getpid()}\n".encode()
        fd = os.open(runs_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)  # one O_APPEND write: atomic between processes
        finally:
            os.close(fd)
        return "joined"

    return app


def _fire_all(storage: str, runs_file: str, trigger: str, barrier: Any, errors: Any) -> None:
    app = build(storage, Path(runs_file))
    try:
        for n in range(ROUNDS):
            barrier.wait(timeout=60)
            app.triggers.fire(f"race-{n}", trigger, {"side": trigger})
    except Exception as exc:  # reported to the parent, which fails the test
        errors.put(repr(exc))


@pytest.mark.slow
def test_two_processes_completing_one_task_at_the_same_instant(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    runs_file = tmp_path / "runs.txt"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    errors = ctx.Queue()
    procs = [
        ctx.Process(target=_fire_all, args=(storage, str(runs_file), side, barrier, errors))
        for side in ("left", "right")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    assert errors.empty(), errors.get()

    runs = runs_file.read_text().splitlines()
    ran = sorted(line.split()[0] for line in runs)
    assert ran == sorted(f"race-{n}" for n in range(ROUNDS)), "every session ran its task exactly once"
    check = build(storage, runs_file)
    for n in range(ROUNDS):
        instances = check.triggers.session(f"race-{n}").instances
        assert list(instances) == ["t_join#0"]
        assert instances["t_join#0"].status is Status.FINISHED
        assert instances["t_join#0"].kwargs == {"left": {"side": "left"}, "right": {"side": "right"}}
    assert {line.split()[1] for line in runs} <= {str(p.pid) for p in procs}, (
        "each ran in the process that completed it"
    )
