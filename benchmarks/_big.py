"""``python -m benchmarks.operations --big``: the operator commands as an
operator runs them (``celery -A benchmarks.ops_app triggers ...`` in a
subprocess each), over a Redis storage holding 1.1 million instances:
10,000 sessions of 100 instances and one session of 100,000.

The fill writes the records through the storage layer, with no engine:
each session's instances in transactions of up to 1,000 (the state's task
record and kept summary in the same commit, as a fire writes them),
pipelined by ``run_many`` 100 sessions at a time. Per 100-instance session:
70 finished (a result), 10 failed (an exception and a 1 kB traceback), 18
unstarted (kwargs, awaiting ``go``), and in every 100th session 2
scheduled (work in flight: their listing reads the records). The large
session: 100,000 finished ``t_item`` instances with kwargs and a result.

Each command's wall time and peak RSS come from ``/usr/bin/time``.
``--code DIR`` also runs them on another checkout's package (``git
archive <commit> celery_triggers | tar -x -C DIR``), interleaved with
this one, on the same data; ``--legacy`` then strips the kept
summaries from every state (sessions written before they were kept) and
runs this checkout's commands again.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from celery_triggers.core.state import Changes, Instance, Status, TaskRecord
from celery_triggers.storage import StorageBackend, resolve_storage

ROOT = Path(__file__).resolve().parent.parent
TRACEBACK = (
    "Traceback (most recent call last):\n" + '  File "proj/tasks.py", line 42, in step\n' * 12 + "ValueError: bad row"
)
BIG = "big-session"


def _instance(task: str, number: int, status: Status, now: float) -> Instance:
    meta: dict[str, Any] = {"created_at": now - 3600 + number * 0.001, "task_id": str(uuid.UUID(int=number))}
    instance = Instance(task, number, status, {"go": {"batch": number // 10, "source": "import"}}, None, meta)
    if status is Status.UNSTARTED:
        instance.kwargs, instance.awaiting = {}, ["go"]
        return instance
    meta.update(scheduled_at=meta["created_at"] + 0.01, hostname="celery@worker-1", attempts=1)
    if status in (Status.FINISHED, Status.FAILED):
        meta["started_at"] = meta["created_at"] + 0.02
    if status is Status.FINISHED:
        meta["finished_at"] = meta["created_at"] + 0.05
        instance.result = {"rows": number, "ok": True}
    elif status is Status.FAILED:
        meta.update(failed_at=meta["created_at"] + 0.05, exc_type="ValueError", exc_module="builtins")
        meta.update(exc_message="bad row", traceback=TRACEBACK)
    return instance


def _small(n: int) -> Status:
    if n < 70:
        return Status.FINISHED
    if n < 80:
        return Status.FAILED
    return Status.UNSTARTED


def _job(uid: str, task: str, numbers: range, statuses: Any, now: float) -> Any:
    def op(txn: Any) -> None:
        instances = {f"{task}#{n}": _instance(task, n, statuses(n), now) for n in numbers}
        txn.write(Changes(tasks={task: TaskRecord(task, numbers.stop)}, instances=instances))

    return (uid, op, ())


def fill(storage: StorageBackend, sessions: int, per_session: int, big: int) -> float:
    """Write the data set; returns the seconds it took."""
    began = time.perf_counter()
    now = time.time()
    jobs = []
    for s in range(sessions):

        def statuses(n: int, s: int = s) -> Status:
            return Status.SCHEDULED if s % 100 == 0 and n >= per_session - 2 else _small(n)

        jobs.append(_job(f"session-{s:05d}", "t_step", range(per_session), statuses, now))
        if len(jobs) == 100:
            _check(storage.run_many(jobs))
            jobs = []
    _check(storage.run_many(jobs))
    for start in range(0, big, 1000):
        numbers = range(start, min(big, start + 1000))
        _check([storage.atomic(BIG, _job(BIG, "t_item", numbers, lambda n: Status.FINISHED, now)[1])])
    return time.perf_counter() - began


def _check(results: list[Any]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result


def strip_summaries(client: Any, prefix: str) -> int:
    """Remove the kept summary from every state: the sessions as an older
    release wrote them."""
    done = 0
    for key in client.scan_iter(match=f"{prefix}:{{*}}:state", count=1000):
        state = json.loads(client.get(key))
        if state.pop("summary", None) is not None:
            client.set(key, json.dumps(state))
            done += 1
    return done


def measure(args: list[str], storage: str, code: Path | None, tmp: Path) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in MB, bytes printed) of ``celery -A
    benchmarks.ops_app triggers ARGS``, run by ``/usr/bin/time`` (whose
    child starts small: a child of this process would inherit its peak)."""
    path = [str(code)] if code else []
    env = {**os.environ, "OPS_STORAGE": storage, "PYTHONPATH": os.pathsep.join([*path, str(ROOT)])}
    report, out = tmp / "time.txt", tmp / "out.txt"
    command = [sys.executable, "-m", "celery", "-A", "benchmarks.ops_app", "triggers", *args]
    with open(out, "wb") as sink:  # run from tmp: "python -m" puts the working directory first on sys.path
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", "-o", str(report), *command],
            cwd=tmp,
            env=env,
            stdout=sink,
            stderr=subprocess.PIPE,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr.decode()}")
    wall, rss_kb = report.read_text().split()[-2:]
    return float(wall), int(rss_kb) // 1024, out.stat().st_size


#: The commands of the speed goals: a listing's first page over the whole
#: storage, and the JSON of the largest session.
GOALS = ("sessions --limit 5", f"inspect {BIG} --json")

COMMANDS = {
    "sessions --limit 5": ["sessions", "--limit", "5"],
    "sessions --limit 5 --json": ["sessions", "--limit", "5", "--json"],
    "sessions --sort last-activity --limit 5": ["sessions", "--sort", "last-activity", "--limit", "5"],
    f"inspect {BIG} --json": ["inspect", BIG, "--json"],
    f"inspect {BIG} (table)": ["inspect", BIG],
}


Results = dict[tuple[str, str], list[tuple[float, int, int]]]


def run(
    runs: int,
    code: Path | None,
    legacy: bool,
    sessions: int,
    per_session: int,
    big: int,
    commands: dict[str, list[str]] | None = None,
) -> Results:
    """Fill a Redis storage of its own, time ``commands`` (default: all of
    :data:`COMMANDS`) as (wall s, peak RSS MB, bytes printed) per run, by
    command and code, print the table and return the figures."""
    import tempfile

    from tests.servers import RedisServer

    from ._setup import machine

    commands = COMMANDS if commands is None else commands
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.directory.mkdir()
        server.start()
        try:
            url = f"{server.url}?prefix=ops"
            storage = resolve_storage(url)
            took = fill(storage, sessions, per_session, big)
            total = sessions * per_session + big
            print(
                f"filled {total:,} instances ({sessions:,} sessions of {per_session} + one of {big:,}) in {took:.0f} s"
            )
            sides = {"after": None, "before": code} if code else {"after": None}
            results: Results = {}
            for name, args in commands.items():
                for _ in range(runs):
                    for side, path in sides.items():  # interleaved
                        results.setdefault((name, side), []).append(measure(args, url, path, Path(tmp)))
            if legacy:
                stripped = strip_summaries(storage.client, "ops")  # type: ignore[attr-defined]
                print(f"stripped the kept summary from {stripped:,} states")
                for name, args in commands.items():
                    for _ in range(runs):
                        results.setdefault((name, "after, legacy data"), []).append(measure(args, url, None, Path(tmp)))
            storage.close()
        finally:
            server.proc.kill() if server.proc else None  # no save of the data set on the way out
    print(f"operator commands on Redis, {total:,} instances, medians of {runs} runs; {machine()}")
    print("| command | code | wall (s) | peak RSS (MB) | output (bytes) |")
    print("|---|---|---|---|---|")
    for (name, side), samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        rss = statistics.median(s[1] for s in samples)
        print(f"| `{name}` | {side} | {wall:.2f} | {rss:.0f} | {samples[0][2]:,} |")
    return results
