"""The operator commands on a large storage: ``inspect --json`` streams the
document it printed when it built it in memory, byte for byte, in memory
that does not grow with the session; ``sessions --limit`` reads only the
sessions it shows; the table caps its rows and says what it left out.
(``python -m benchmarks.operations --big`` measures 1.1 million instances.)"""

from __future__ import annotations

import functools
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import click
import pytest
from celery import Celery
from celery.bin.base import CLIContext
from click.testing import CliRunner, Result

from celery_triggers import TriggerManager, trigger_task
from celery_triggers.cli import triggers
from celery_triggers.cli.jsonstream import echo_stream
from celery_triggers.cli.views import instance_view, session_doc
from celery_triggers.core.state import RESOLVED, Changes, Instance, Status, TaskRecord
from celery_triggers.session.summary import by_task, task_status
from celery_triggers.storage import StorageBackend
from celery_triggers.storage.txn import SessionTxn

from .clirunner import apart
from .conftest import make_app, storage_url_for
from .test_cli import shared_storage_apps

KINDS = ["memory", "sqlite", "redis", "django-redis", "django-locmem", "django-db"]


def run(app: Celery, *args: str) -> Result:
    return CliRunner().invoke(triggers, list(args), obj=CLIContext(app=app, no_color=True, workdir=None))


def run_apart(app: Celery, *args: str) -> Result:
    """Like ``run``, with stdout and stderr kept apart (``result.stdout`` is the JSON alone)."""
    return apart().invoke(triggers, list(args), obj=CLIContext(app=app, no_color=True, workdir=None))


def reference_view(manager: TriggerManager, now: float) -> dict[str, Any]:
    """``inspect --json``'s document as celery-triggers built it in memory
    before it streamed it (the code of that release, kept here as the
    reference the streamed bytes must match)."""
    configs, snapshot = manager.overview()
    instances = manager.instances
    fired = {name for name, record in snapshot.triggers.items() if record.count > 0}
    stored = by_task(instances.values())

    def unknown(name: str, mine: list[Instance]) -> dict[str, Any]:
        return {
            "task": name,
            "run": None,
            "known": False,
            "status": task_status(mine) or "waiting",
            "awaiting": [],
            "unless": {"triggers": [], "fired": [], "held": False},
            "instances": [instance_view(i, [], now) for i in mine],
        }

    tasks = [unknown(name, stored[name]) for name in set(stored) - set(configs)]
    for name, config in configs.items():
        mine = stored.get(name, [])
        record = snapshot.tasks.get(name)
        unless = {
            "triggers": list(config.unless),
            "fired": sorted(set(config.unless) & fired),
            "held": bool(record and record.abandoned),
        }
        rows = [
            instance_view(i, sorted(config.required - set(i.kwargs)) if i.status is Status.UNSTARTED else [], now)
            for i in mine
        ]
        tasks.append(
            {
                "task": name,
                "run": config.run,
                "known": True,
                "status": task_status(mine) or "waiting",
                "awaiting": [] if mine else sorted(config.required - fired),
                "unless": unless,
                "instances": rows,
            }
        )
    tasks.sort(key=lambda task: str(task["task"]))
    triggers_fired = [
        {"trigger": name, "count": record.count, "kwargs": record.kwargs}
        for name, record in sorted(snapshot.triggers.items())
        if record.count > 0
    ]
    return {
        "schema": "celery-triggers.inspect/1",
        "session": manager.uid,
        "tasks": tasks,
        "triggers": triggers_fired,
        "instances": len(instances),
        "unresolved": sum(1 for i in instances.values() if i.status not in RESOLVED),
    }


def streamed(manager: TriggerManager, now: float, monkeypatch: pytest.MonkeyPatch) -> str:
    """What ``inspect --json`` prints for ``manager``'s session at ``now``."""
    out: list[str] = []
    monkeypatch.setattr(click, "echo", lambda text="", nl=True, **_: out.append(str(text) + ("\n" if nl else "")))
    echo_stream(session_doc(manager, now))
    monkeypatch.undo()
    return "".join(out)


def workflow_app(storage: str) -> Celery:
    """Finished, failed (a traceback), waiting, held and per-event tasks,
    unicode and nested kwargs, a session with an instance of a task the app
    does not know."""
    app = make_app(storage)

    @trigger_task(after=["start", "data"], name="t_import")
    @app.task(shared=False, name="scale.import")
    def import_() -> dict[str, Any]:
        return {"rows": 3, "note": "naïve ☃"}

    @trigger_task(after=["t_import"], unless=["cancelled"], name="t_report")
    @app.task(shared=False, name="scale.report")
    def report() -> None:
        raise RuntimeError("report engine down")

    @trigger_task(after=["t_report", "reviewed"], name="t_publish")
    @app.task(shared=False, name="scale.publish")
    def publish() -> str:
        return "published"

    @trigger_task(after=["item"], and_every="item", unless=["stop"], name="t_item")
    @app.task(shared=False, name="scale.item")
    def item() -> None: ...

    session = app.triggers.session("s-1")
    session.fire("start", {"by": "ops", "tags": ["a", "b"], "nested": {"x": [1, 2.5, None]}})
    session.fire("data", {"file": "a.csv"})
    for n in range(3):
        app.triggers.session("s-items").fire("item", {"n": n, "text": "é\u2028"})
    app.triggers.session("s-held").fire("stop")
    app.triggers.session("s-empty").fire("nothing-listens")
    return app


@pytest.mark.parametrize("kind", KINDS)
def test_inspect_json_streams_the_bytes_the_document_built_in_memory_printed(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = workflow_app(storage_url_for(kind, request, tmp_path))
    now = time.time()
    for uid in ("s-1", "s-items", "s-held", "s-empty"):
        manager = app.triggers.session(uid)
        expected = (
            json.dumps(reference_view(manager, now), indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n"
        )
        assert streamed(manager, now, monkeypatch) == expected, uid
    # And the command prints it (ages aside: the command reads the clock itself)
    printed = run(app, "inspect", "s-1", "--json")
    assert printed.exit_code == 0, printed.output
    view = json.loads(printed.output)
    reference = reference_view(app.triggers.session("s-1"), now)
    for document in (view, reference):
        for task in document["tasks"]:
            for instance in task["instances"]:
                instance.pop("age_seconds")
    assert view == reference


def test_inspect_json_streams_tasks_unknown_to_the_app_in_their_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, cli_app = shared_storage_apps(tmp_path)
    manager = cli_app.triggers.session("mixed")
    now = time.time()
    expected = (
        json.dumps(reference_view(manager, now), indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n"
    )
    assert streamed(manager, now, monkeypatch) == expected


def write_session(storage: StorageBackend, uid: str, count: int, *, task: str = "t_item") -> None:
    """``count`` finished instances (kwargs, result, timestamps) written
    through the storage layer, 500 per transaction."""
    now = time.time()
    for start in range(0, count, 500):
        numbers = range(start, min(count, start + 500))
        instances = {
            f"{task}#{n}": Instance(
                task,
                n,
                Status.FINISHED,
                {"item": {"n": n, "payload": "x" * 100}},
                {"rows": n},
                {"created_at": now, "finished_at": now + 1, "task_id": f"{n:036d}", "hostname": "celery@w1"},
            )
            for n in numbers
        }
        changes = Changes(tasks={task: TaskRecord(task, numbers.stop)}, instances=instances)
        storage.atomic(uid, functools.partial(write_changes, changes=changes))


def write_changes(txn: SessionTxn, changes: Changes) -> None:
    txn.write(changes)


def peak_while_streaming(manager: TriggerManager, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(peak bytes allocated, bytes printed) by ``inspect --json``'s writer."""
    printed = [0]

    def echo(text: str = "", nl: bool = True, **_: Any) -> None:
        printed[0] += len(text)

    monkeypatch.setattr(click, "echo", echo)
    tracemalloc.start()
    try:
        echo_stream(session_doc(manager))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        monkeypatch.undo()
    return peak, printed[0]


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_inspect_json_memory_does_not_grow_with_the_session(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(storage_url_for(kind, request, tmp_path))
    write_session(app.triggers.storage, "small", 2000)  # several batches: two are held at a time
    write_session(app.triggers.storage, "large", 6000)
    peak_small, size_small = peak_while_streaming(app.triggers.session("small"), monkeypatch)
    peak_large, size_large = peak_while_streaming(app.triggers.session("large"), monkeypatch)
    assert size_large > 2.9 * size_small > 0
    assert peak_large < 1.3 * peak_small, f"peak {peak_small} -> {peak_large} bytes for 3x the instances"
    assert peak_large < size_large / 2, f"peak {peak_large} bytes for a {size_large}-byte document"


class Spy:
    """Counts the storage reads the ``sessions`` command makes."""

    def __init__(self, storage: StorageBackend, monkeypatch: pytest.MonkeyPatch):
        self.summarized: list[str] = []
        self.whole: list[str] = []
        self.streamed: list[str] = []
        summaries, iter_instances = storage.summaries, storage.iter_instances

        def spy_summaries(uids: Any, **kwargs: Any) -> Any:
            self.summarized.extend(uids)
            return summaries(uids, **kwargs)

        def spy_iter(uid: str, batch: int = 1000) -> Any:
            self.streamed.append(uid)
            return iter_instances(uid, batch)

        monkeypatch.setattr(storage, "summaries", spy_summaries)
        monkeypatch.setattr(storage, "iter_instances", spy_iter)

        def whole(uid: str) -> dict[str, Any]:
            self.whole.append(uid)
            return {}

        def whole_many(uids: list[str]) -> dict[str, Any]:
            self.whole.extend(uids)
            return {}

        monkeypatch.setattr(storage, "instances", whole)
        monkeypatch.setattr(storage, "instances_many", whole_many)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis", "django-db"])
def test_sessions_limit_reads_only_the_sessions_it_shows(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(storage_url_for(kind, request, tmp_path))
    storage = app.triggers.storage
    for n in range(30):
        write_session(storage, f"s-{n:02d}", 3)
    spy = Spy(storage, monkeypatch)
    table = run(app, "sessions", "--limit", "3")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert [line.split("\t")[0] for line in lines[2:5]] == ["s-00", "s-01", "s-02"]
    assert lines[5:] == ["27 more session(s) not shown (--limit 3)"]
    shown = {"s-00", "s-01", "s-02"}
    assert sorted(spy.summarized) == sorted(shown), "only the sessions shown are summed up"
    assert set(spy.streamed) | set(spy.whole) <= shown
    if kind != "memory":  # in-process: its sessions are read whole
        assert spy.whole == [], "no session is read whole"
    if kind == "redis":
        assert spy.streamed == [], "their states keep the summaries: no instance record is read"


def test_sessions_sorted_or_filtered_on_redis_read_states_only_and_stop_at_the_limit(
    redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import unique_prefix

    app = make_app(f"{redis_server.url}?prefix={unique_prefix()}")
    storage = app.triggers.storage
    for n in range(30):
        write_session(storage, f"s-{n:02d}", 1 + n % 4)
    spy = Spy(storage, monkeypatch)
    largest = run_apart(app, "sessions", "--sort", "instances", "--limit", "2", "--json")
    assert [r["instances"] for r in json.loads(largest.stdout)] == [4, 4]
    assert largest.stderr == "28 more session(s) not shown (--limit 2)\n"
    assert spy.streamed == [] and spy.whole == [], "a sort by size reads the states, no instance record"
    spy.summarized.clear()
    recent = run(app, "sessions", "--sort", "last-activity", "--limit", "1")
    assert recent.exit_code == 0 and recent.output.splitlines()[-1] == "29 more session(s) not shown (--limit 1)"
    finished = run(app, "sessions", "--status", "finished", "--limit", "4")
    assert [line.split("\t")[0] for line in finished.output.splitlines()[2:6]] == ["s-00", "s-01", "s-02", "s-03"]
    assert finished.output.splitlines()[-1] == "stopped at --limit 4: 26 more session(s) not checked"
    assert spy.streamed == [] and spy.whole == []


def test_kept_summaries_agree_with_the_records_and_older_states_are_tallied(
    redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions written by a release that kept no summary, or whose state
    an older release rewrote since, are summed up from their records: the
    same rows."""
    from .conftest import unique_prefix

    prefix = unique_prefix()
    app = workflow_app(f"{redis_server.url}?prefix={prefix}")
    storage = app.triggers.storage
    rows = json.loads(run_apart(app, "sessions", "--json").stdout)
    assert {r["session"]: r["counts"] for r in rows}["s-1"] == {"failed": 1, "finished": 1}
    client = storage.client
    states = list(client.scan_iter(match=f"{prefix}:{{*}}:state"))
    for n, key in enumerate(states):
        state = json.loads(client.get(key))
        if n % 2:
            del state["summary"]  # written before summaries were kept
        else:
            state["updated_at"] += 1  # rewritten by a release that does not keep it
        client.set(key, json.dumps(state))
    from celery_triggers.storage.redis import listing

    streamed: list[str] = []
    records = listing.iter_instances

    def spy(store: Any, uid: str, *a: Any) -> Any:
        streamed.append(uid)
        return records(store, uid, *a)

    monkeypatch.setattr(listing, "iter_instances", spy)
    assert json.loads(run_apart(app, "sessions", "--json").stdout) == rows
    assert sorted(streamed) == sorted(r["session"] for r in rows), "read from their records"


def test_the_inspect_table_caps_its_rows_and_counts_every_instance(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    write_session(app.triggers.storage, "wide", 2500)
    capped = run(app, "inspect", "wide", "--rows", "5")
    assert capped.exit_code == 0, capped.output
    lines = capped.output.splitlines()
    assert lines[0].startswith("session wide (2500 instances, 0 unresolved; 1 task unknown to this app: t_item)")
    assert [line.split("\t")[0] for line in lines[2:7]] == [f"t_item#{n} (unknown task)" for n in range(5)]
    assert lines[7] == "2495 more instance(s) not shown (--rows 5; --rows 0 shows all, --json lists all)"
    everything = run(app, "inspect", "wide", "--rows", "0").output.splitlines()
    assert len([line for line in everything if line.startswith("t_item#")]) == 2500
    default = run(app, "inspect", "wide").output.splitlines()
    assert "1500 more instance(s) not shown (--rows 1000; --rows 0 shows all, --json lists all)" in default
