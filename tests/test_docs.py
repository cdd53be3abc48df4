"""The documentation site (docs/, mkdocs.yml) is true: its code runs, its
tables match the code, and it builds with no warning.

- The tutorials are followed literally, as a new user would: every
  ``python title="FILE"`` block is written to that file (``append``: added
  at its end), every line of a ``bash`` block is run in order in one
  folder (the ``celery ... worker`` lines in the background, the
  ``python -m venv`` and ``pip install`` lines skipped: the checkout is
  installed), and a ``text title="Output"`` block must be what the command
  before it printed.
- The testing how-to's ``python title="test_....py"`` file passes under
  pytest with a real worker.
- Every other page's untitled ``python`` blocks run in order, in one namespace per
  page, as a reader would paste them. The pages that go on from the
  concepts page's example app (``app``, ``trigger_task``) get it first;
  code the page calls "your code" (``upstream_down``, ``nothing_to_do``) is
  stubbed. A fragment that is not meant to run (a view, an endless loop)
  is fenced ``py`` instead of ``python``.
- The settings, CLI, API and errors reference pages list every setting,
  command, option, public name and error class of the package, and no
  other.
- ``mkdocs build --strict`` passes (CI installs the ``docs`` extra).
"""

from __future__ import annotations

import io
import os
import re
import shlex
import signal
import subprocess
import sys
import types
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celery_triggers import Status
from celery_triggers.testing import make_test_app

from .conftest import ROOT
from .servers import IN_CI, RedisServer

DOCS = ROOT / "docs"
TUTORIALS = ["tutorial/first-trigger-task.md", "tutorial/django.md"]
#: The page whose example app the how-to pages go on from.
BASE_PAGE = "explanation/concepts.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.M | re.S)


def page(name: str) -> str:
    return (DOCS / name).read_text()


def python_blocks(text: str) -> list[str]:
    """The unindented, untitled ``python`` blocks of a page."""
    return [body for lang, info, body in FENCE.findall(text) if lang == "python" and not info.strip()]


def pages_with_code() -> list[str]:
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        name = path.relative_to(DOCS).as_posix()
        if name not in TUTORIALS and python_blocks(path.read_text()):
            found.append(name)
    return found


# ---------------------------------------------------------------- tutorials


def _steps(text: str) -> Iterator[tuple[str, str, str]]:
    for lang, info, body in FENCE.findall(text):
        yield lang, info.strip(), body


def _this_python(line: str) -> str:
    """The command as this interpreter runs it (``celery``, ``python`` and
    ``django-admin`` from the environment under test, whatever ``PATH`` says)."""
    for command, module in (("celery ", "celery"), ("python ", None), ("django-admin ", "django")):
        if line.startswith(command):
            runner = [sys.executable, "-m", module] if module else [sys.executable]
            return shlex.join(runner) + " " + line[len(command) :]
    return line


@pytest.mark.slow
@pytest.mark.parametrize("name", TUTORIALS)
def test_the_tutorial_followed_literally_works(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    workers: list[subprocess.Popen[bytes]] = []
    last: subprocess.CompletedProcess[str] | None = None
    outputs_checked = 0
    ran: list[str] = []
    try:
        for lang, info, body in _steps(page(name)):
            if lang == "python" and info.startswith("title="):
                target = tmp_path / info.split('"')[1]
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("a" if info.endswith(" append") else "w") as f:
                    f.write("\n" + body if info.endswith(" append") else body)
            elif lang == "bash":
                for line in body.splitlines():
                    if not line.strip() or line.startswith(("python -m venv", "pip install")):
                        continue
                    ran.append(line)
                    line = _this_python(line)
                    if " worker" in line and "-m celery " in line:
                        log = (tmp_path / f"worker{len(workers)}.log").open("wb")
                        workers.append(
                            subprocess.Popen(shlex.split(line), cwd=tmp_path, env=env, stdout=log, stderr=log)
                        )
                        continue
                    last = subprocess.run(
                        line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
                    )
                    assert last.returncode == 0, f"{line!r} failed:\n{last.stdout}\n{last.stderr}"
            elif lang == "text" and info == 'title="Output"':
                assert last is not None, "an output block follows a command"
                assert body.strip() in last.stdout, f"{last.args!r} printed:\n{last.stdout}"
                outputs_checked += 1
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    assert workers, "the tutorial starts a worker"
    assert outputs_checked >= 1, "the tutorial shows what its commands print"
    assert any("triggers inspect" in line for line in ran)


@pytest.mark.slow
def test_the_testing_page_s_real_worker_example_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The how-to's test file, run by pytest with ``celery.contrib.pytest``
    (a real worker in a thread, no Docker), passes."""
    (title, body), *_ = [
        (info.split('"')[1], body)
        for lang, info, body in FENCE.findall(page("how-to/testing.md"))
        if lang == "python" and info.strip().startswith("title=")
    ]
    pytester.path.joinpath(title).write_text(body)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess("-p", "celery.contrib.pytest", "-p", "no:cacheprovider", title)
    result.assert_outcomes(passed=1)


# ---------------------------------------------------------------- other pages


def _stub_modules(ns: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "proj", types.SimpleNamespace(app=ns["app"]))


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


def _check_project(ns: dict[str, Any]) -> None:
    assert ns["session"].instances["t_createApplicant#0"].status is Status.SCHEDULED
    assert "t_computeScore#0" not in ns["session"].instances, "none of its triggers has fired yet"


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


def _check_testing(ns: dict[str, Any]) -> None:
    ns["test_score_after_everything_arrived"]()
    inline = make_test_app()
    ns["test_inline_tasks"](inline, inline.triggers.session("inline"))


def _check_migration(ns: dict[str, Any]) -> None:
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(ns["ImportTestCase"])
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
    assert result.testsRun == 1 and result.wasSuccessful(), result.failures + result.errors
    _check_migration_branches(ns)


def _check_migration_branches(ns: dict[str, Any]) -> None:
    """Every branch of the migrated task runs: empty responses skip, an
    upstream outage retries up to max_retries."""
    outcomes = {}
    for uid, responses, down in (("empty", {}, False), ("down", {"q1": 3}, True)):
        ns["upstream_down"] = lambda down=down: down
        manager = ns["TriggerManager"](ns["CacheStorageBackend"](f"docs-migration-{uid}"))
        manager.update_configuration(ns["CONFIGURATION"])
        manager.fire("firstPageReceived", {"responses": responses})
        ns["ThreadingTaskRunner"].join_all()
        outcomes[uid] = {n: i.status for n, i in manager.storage.instances.items() if n.startswith("t_importSubject")}
    ns["upstream_down"] = lambda: False
    assert outcomes["empty"] == {"t_importSubject#0": Status.SKIPPED}, "empty responses reach the skip"
    assert sorted(outcomes["down"].values()) == [Status.FAILED] + [Status.REPLAYED] * 3, outcomes["down"]


def _check_task_body_branches(ns: dict[str, Any]) -> None:
    """Every branch of import_page runs: skip, retry (to MaxRetriesExceeded), and the fire."""
    from celery_triggers.testing import eager_triggers

    seen = {}
    for case in ("skip", "retry", "fire"):
        ns["nothing_to_do"] = lambda case=case: case == "skip"
        ns["upstream_down"] = lambda case=case: case == "retry"
        with eager_triggers(ns["app"]) as eager:
            session = eager.triggers.session(f"docs-page-{case}")
            session.fire("firstPageReceived")
            session.fire("pageReceived", {"page": 1, "answers": [3]})
            seen[case] = {n: i.status for n, i in session.instances.items() if n.startswith("t_import_page")}
            fired = set(session.storage.latest_kwargs)
    ns["nothing_to_do"] = ns["upstream_down"] = lambda: False
    assert seen["skip"] == {"t_import_page#0": Status.SKIPPED}
    assert sorted(seen["retry"].values()) == [Status.FAILED] + [Status.REPLAYED] * 3
    assert seen["fire"] == {"t_import_page#0": Status.FINISHED} and "pageImported" in fired


#: (a marker in a block, what to do before it runs, what to check after it ran, the check's name)
HARNESS: list[tuple[str, Callable[[dict[str, Any]], None] | None, Callable[[dict[str, Any]], None] | None, str]] = [
    ('app.triggers.fire("session-42"', None, _check_project, "project"),
    ("session.get_unresolved_instances()", _prepare_recovery, _check_recovery, "recovery"),
    ("def test_score_after_everything_arrived", None, _check_testing, "testing"),
    ("class ImportTestCase", None, _check_migration, "migration"),
]


def run_blocks(
    name: str, ns: dict[str, Any], redis_url: str, monkeypatch: pytest.MonkeyPatch, checked: list[str]
) -> None:
    for number, block in enumerate(python_blocks(page(name)), 1):
        code = block.replace("redis://localhost:6379/0", redis_url)
        if "from proj import app" in code:
            _stub_modules(ns, monkeypatch)
        if "class ImportTestCase" in code:
            ns["app"].conf.triggers_runner = "threading"
            ns["app"].set_current()
        for marker, prepare, _, _ in HARNESS:
            if marker in code and prepare is not None:
                prepare(ns)
        exec(compile(code, f"docs/{name} python block {number}", "exec"), ns)  # the page's own code
        for marker, _, check, what in HARNESS:
            if marker in code and check is not None:
                check(ns)
                checked.append(what)


@pytest.mark.parametrize("name", pages_with_code())
def test_every_python_block_of_the_page_runs(
    name: str,
    redis_server: RedisServer,
    django_caches: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # SQLite files land here
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/9"
    ns: dict[str, Any] = {
        "__name__": "docs_" + re.sub(r"\W", "_", name),
        "upstream_down": lambda: False,
        "nothing_to_do": lambda: False,
    }
    checked: list[str] = []
    if name != BASE_PAGE:
        run_blocks(BASE_PAGE, ns, redis_url, monkeypatch, [])
    run_blocks(name, ns, redis_url, monkeypatch, checked)
    expected = {
        BASE_PAGE: ["project"],
        "how-to/recover.md": ["recovery"],
        "how-to/testing.md": ["testing"],
        "how-to/migrate.md": ["migration"],
    }
    assert checked == expected.get(name, []), "the page's example was checked"
    if name == "how-to/task-body.md":
        assert "t_import_page" in ns["app"].triggers.configs, "the task body's example registered its task"
        _check_task_body_branches(ns)


def test_the_pages_that_carry_the_examples_have_code() -> None:
    assert {BASE_PAGE, "how-to/recover.md", "how-to/testing.md", "how-to/migrate.md"} <= set(pages_with_code())


# ---------------------------------------------------------------- reference pages


def test_the_settings_table_is_the_package_s_table() -> None:
    """The settings page lists every setting of
    ``celery_triggers.app.settings.SETTINGS`` and no other, each with the same
    default: as shown, and as the parser reads the value shown."""
    from celery_triggers.app.settings import SETTINGS, parse

    rows = re.findall(r"^\| `(triggers_\w+)` \| (.*?) \| .* \|$", page("reference/settings.md"), re.M)
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


def test_the_cli_page_has_every_command_and_option() -> None:
    """Each ``celery triggers`` command has a ``## `name` `` section naming
    every one of its options, and the page has no section for a command
    that does not exist."""
    import click

    from celery_triggers.cli import triggers

    text = page("reference/cli.md")
    sections = dict(re.findall(r"^## `(\w[\w-]*)`\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    assert isinstance(triggers, click.Group)
    assert sorted(sections) == sorted(triggers.commands)
    for name, command in triggers.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    if opt.startswith("--"):
                        assert opt in sections[name], f"{name}: {opt} is not documented"
    assert "## Exit codes" in text


def test_the_api_page_renders_every_public_name() -> None:
    import celery_triggers
    import celery_triggers.core.errors as errors

    api = set(re.findall(r"^::: celery_triggers\.(\w+)$", page("reference/api.md"), re.M))
    error_page = set(re.findall(r"^::: celery_triggers\.(\w+)$", page("reference/errors.md"), re.M))
    assert error_page == set(errors.__all__)
    assert api | error_page == set(celery_triggers.__all__) | {"testing", "observe"}
    assert not api & error_page


# ---------------------------------------------------------------- the build


@pytest.mark.slow
def test_the_site_builds_with_no_warning(tmp_path: Path) -> None:
    """``mkdocs build --strict``: broken links, unknown names in the API
    pages and pages missing from the navigation are errors."""
    try:
        import mkdocs  # noqa: F401  (only to know whether the docs extra is installed)
        import mkdocstrings  # noqa: F401
    except ImportError:
        message = "mkdocs is not installed: pip install -e '.[docs]'"
        if IN_CI:
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    built = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "wait_until_idle" in built and "trigger_task" in built, "the API page rendered the docstrings"
