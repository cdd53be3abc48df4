"""The cookbook examples, run on the eager runner."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from celery_triggers import Status
from examples.finalize.app import make_app

from .conftest import ROOT, wait_for
from .servers import free_port


def test_session_finalizes_once_every_other_task_is_resolved() -> None:
    app = make_app()
    session = app.triggers.session("q")
    session.fire("pageReceived", {"answers": [1, 2]})
    session.fire("pageReceived", {"answers": [3]})
    assert session.latest_kwargs("sessionFinalized") is None, "responses are waiting for the subject"
    session.fire("firstPageReceived", {"subject": "S-1"})

    instances = session.instances
    assert {n: i.status for n, i in instances.items()} == {
        "t_importResponses#0": Status.FINISHED,
        "t_importResponses#1": Status.FINISHED,
        "t_importSubject#0": Status.FINISHED,
        "t_markComplete#0": Status.FINISHED,
    }
    finished_last = max(instances.values(), key=lambda i: (i.metadata["finished_at"], i.task == "t_markComplete"))
    assert finished_last.name == "t_markComplete#0"
    assert instances["t_markComplete#0"].kwargs == {"sessionFinalized": {}}
    session.fire("pageReceived", {"answers": []})
    assert [i.name for i in session.instances_of_task("t_markComplete")] == ["t_markComplete#0"], "finalized once"


def test_a_failed_task_keeps_the_session_open() -> None:
    app = make_app()
    session = app.triggers.session("q")
    session.fire("pageReceived", {"wrong": "shape"})  # import_responses raises KeyError
    session.fire("firstPageReceived", {"subject": "S-1"})
    assert session.instances["t_importResponses#0"].status is Status.FAILED
    assert "t_markComplete#0" not in session.instances
    session.skip_failed_instance("t_importResponses#0")
    assert session.latest_kwargs("sessionFinalized") is None, "a skip fires nothing unless it cascades"
    session.fire("pageReceived", {"answers": [1]})
    assert session.instances["t_markComplete#0"].status is Status.FINISHED


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_the_shop_served_stops_its_worker_on_sigterm(tmp_path: Path) -> None:
    """Given ``python -m examples.django_shop --serve`` serving the admin with
    its worker, when it gets SIGTERM (only it, by PID), its worker stops too."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"} | {"SHOP_DATA": str(tmp_path)}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "examples.django_shop", "--serve", "--port", str(port), "--seed", "1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def listening() -> bool:
            assert serve.poll() is None, log.read_text(errors="replace")
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 120, "the admin served")
        workers = [pid for pid in _children(serve.pid) if "celery" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert workers, "its worker runs as its child"
        os.kill(serve.pid, signal.SIGTERM)
        serve.wait(timeout=90)
        wait_for(lambda: not any(_running(pid) for pid in workers), 60, "the worker to stop")
    finally:  # whatever is left of what this test started: its process group
        try:
            os.killpg(serve.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        serve.wait()
