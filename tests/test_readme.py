"""Every ``python`` code block of README.md runs, in order, in one namespace
(as a reader would paste them), and does what the README says.

What the harness supplies, and why: the broker URL of the first block
points at the tests' own redis-server; the code it calls "your code"
(``upstream_down``, ``nothing_to_do``) is stubbed; the recovery block gets
a session ``uid`` holding the failed and scheduled instances it names; the
testing block imports ``proj``, which is the README's app; the migration
test runs with the threading runner, as a project's test settings would
set. The ``bash`` blocks are the set-up commands (what CI runs) and
command listings (tests/test_cli.py runs the commands).
"""

from __future__ import annotations

import io
import re
import sys
import types
import unittest
from pathlib import Path
from typing import Any

import pytest

from celery_triggers import Status
from celery_triggers.testing import make_test_app

from .conftest import ROOT
from .servers import RedisServer

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def _prepare_recovery(ns: dict[str, Any]) -> None:
    app = ns["app"]
    app.triggers.configure(
        {"t_x": {"after": [], "andEvery": "x", "run": "proj.x"}, "t_y": {"after": ["y"], "run": "proj.y"}}
    )
    session = app.triggers.session("recovery-demo")
    for _ in range(6):
        session.fire("x", {"n": 1})
    for n in range(6):
        session.update_instance_status(f"t_x#{n}", "failed")
    session.fire("y")
    ns["uid"] = session.uid


def _check_recovery(ns: dict[str, Any]) -> None:
    status = {name: i.status for name, i in ns["session"].instances.items()}
    assert [status[f"t_x#{n}"] for n in range(6)] == [
        Status.REPLAYED,
        Status.REPLAYED,
        Status.REPLAYED,
        Status.SKIPPED,
        Status.FINISHED,
        Status.FAILED,
    ]
    clones = {i.metadata["parent"]: i for i in ns["session"].instances.values() if i.metadata.get("parent")}
    assert clones["t_x#1"].kwargs == {"x": {"n": 1}, "a": {"fixed": 1}}, "kwargs_update merges"
    assert clones["t_x#2"].kwargs == {"a": {"fixed": 1}}, "replacement kwargs replace"


def _check_migration_branches(ns: dict[str, Any]) -> None:
    """Every branch of the migrated task runs: empty responses skip, an
    upstream outage retries up to max_retries."""
    outcomes = {}
    for uid, responses, down in (("empty", {}, False), ("down", {"q1": 3}, True)):
        ns["upstream_down"] = lambda down=down: down
        manager = ns["TriggerManager"](ns["CacheStorageBackend"](f"readme-migration-{uid}"))
        manager.update_configuration(ns["CONFIGURATION"])
        manager.fire("firstPageReceived", {"responses": responses})
        ns["ThreadingTaskRunner"].join_all()
        outcomes[uid] = {n: i.status for n, i in manager.storage.instances.items() if n.startswith("t_importSubject")}
    ns["upstream_down"] = lambda: False
    assert outcomes["empty"] == {"t_importSubject#0": Status.SKIPPED}, "empty responses reach the skip"
    assert sorted(outcomes["down"].values()) == [Status.FAILED] + [Status.REPLAYED] * 3, outcomes["down"]


def _check_inside_branches(ns: dict[str, Any]) -> None:
    """Every branch of import_page runs: skip, retry (to MaxRetriesExceeded), and the fire."""
    from celery_triggers.testing import eager_triggers

    seen = {}
    for case in ("skip", "retry", "fire"):
        ns["nothing_to_do"] = lambda case=case: case == "skip"
        ns["upstream_down"] = lambda case=case: case == "retry"
        with eager_triggers(ns["app"]) as eager:
            session = eager.triggers.session(f"readme-page-{case}")
            session.fire("firstPageReceived")
            session.fire("pageReceived", {"page": 1, "answers": [3]})
            seen[case] = {n: i.status for n, i in session.instances.items() if n.startswith("t_import_page")}
            fired = set(session.storage.latest_kwargs)
    ns["nothing_to_do"] = ns["upstream_down"] = lambda: False
    assert seen["skip"] == {"t_import_page#0": Status.SKIPPED}
    assert sorted(seen["retry"].values()) == [Status.FAILED] + [Status.REPLAYED] * 3
    assert seen["fire"] == {"t_import_page#0": Status.FINISHED} and "pageImported" in fired


def test_every_python_block_of_the_readme_runs(
    redis_server: RedisServer, django_caches: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(BLOCKS) >= 6, "the README's python blocks were found"
    monkeypatch.chdir(tmp_path)  # the first block's SQLite file lands here
    ns: dict[str, Any] = {"__name__": "readme", "upstream_down": lambda: False, "nothing_to_do": lambda: False}
    checked = []
    for number, block in enumerate(BLOCKS, 1):
        code = block.replace("redis://localhost:6379/0", redis_server.url.rsplit("/", 1)[0] + "/9")
        if "session.get_unresolved_instances()" in code:
            _prepare_recovery(ns)
        if "from proj import app" in code:
            monkeypatch.setitem(sys.modules, "proj", types.SimpleNamespace(app=ns["app"]))
        if "class ImportTestCase" in code:
            ns["app"].conf.triggers_runner = "threading"
            ns["app"].set_current()
        exec(compile(code, f"README.md python block {number}", "exec"), ns)  # the README's own code

        if 'app.triggers.fire("session-42"' in code:
            assert ns["session"].instances["t_createApplicant#0"].status is Status.SCHEDULED
            assert "t_computeScore#0" not in ns["session"].instances, "none of its triggers has fired yet"
            checked.append("project")
        elif "session.get_unresolved_instances()" in code:
            _check_recovery(ns)
            checked.append("recovery")
        elif "def test_score_after_everything_arrived" in code:
            ns["test_score_after_everything_arrived"]()
            inline = make_test_app()
            ns["test_inline_tasks"](inline, inline.triggers.session("inline"))
            checked.append("testing")
        elif "class ImportTestCase" in code:
            suite = unittest.defaultTestLoader.loadTestsFromTestCase(ns["ImportTestCase"])
            result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
            assert result.testsRun == 1 and result.wasSuccessful(), result.failures + result.errors
            _check_migration_branches(ns)
            checked.append("migration")
    _check_inside_branches(ns)
    assert checked == ["project", "recovery", "testing", "migration"]
    assert "t_import_page" in ns["app"].triggers.configs, "the 'inside a trigger task' block registered its task"


def test_the_settings_table_is_the_package_s_table() -> None:
    """README's "Settings (`app.conf`)" lists every setting of
    ``celery_triggers.app.settings.SETTINGS`` and no other, each with the same
    default: as shown, and as the parser reads the value shown."""
    from celery_triggers.app.settings import SETTINGS, parse

    section = README.split("### Settings (`app.conf`)", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(triggers_\w+)` \| (.*?) \| .* \|$", section, re.M)
    table = dict(rows)
    assert len(table) == len(rows), "a setting listed twice"
    assert sorted(table) == sorted(SETTINGS)
    for name, shown in table.items():
        option = SETTINGS[name]
        assert shown == option.readme_default, name
        literal = re.match(r"`([^`]*)`", shown)
        if option.default is not None:
            assert literal is not None, name
            assert parse(name, literal.group(1)) == parse(name, None), name
