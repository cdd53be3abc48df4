"""``celery triggers ...`` through click's CliRunner, plus one real
``celery -A`` subprocess and graphviz's ``dot`` on the graph output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.bin.base import CLIContext
from click.testing import CliRunner, Result

from celery_triggers import Status, trigger_task
from celery_triggers.cli import triggers

from .clirunner import apart
from .conftest import ROOT, ExampleRun, make_app, wait_for
from .servers import IN_CI


@pytest.fixture
def app() -> Celery:
    app = make_app()

    @trigger_task(after=["start", "data"], name="t_import")
    @app.task(shared=False, name="cli.import")
    def import_() -> dict[str, Any]:
        return {"rows": 3}

    @trigger_task(after=["t_import"], unless=["cancelled"], name="t_report")
    @app.task(shared=False, name="cli.report")
    def report(trigger_kwargs: dict[str, Any]) -> None:
        if trigger_kwargs["t_import"].get("rows") == 3:
            raise RuntimeError("report engine down")

    @trigger_task(after=["t_report", "reviewed"], name="t_publish")
    @app.task(shared=False, name="cli.publish")
    def publish() -> str:
        return "published"

    session = app.triggers.session("s-1")
    session.fire("start")
    session.fire("data", {"file": "a.csv"})
    return app


def run(app: Celery, *args: str) -> Result:
    return CliRunner().invoke(triggers, list(args), obj=CLIContext(app=app, no_color=True, workdir=None))


def run_apart(app: Celery, *args: str) -> Result:
    """Like ``run``, with stdout and stderr kept apart (``result.stdout`` is the JSON alone)."""
    return apart().invoke(triggers, list(args), obj=CLIContext(app=app, no_color=True, workdir=None))


def test_inspect_shows_every_task_and_instance(app: Celery) -> None:
    result = run(app, "inspect", "s-1")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "session s-1 (2 instances, 1 unresolved)" in out
    assert "t_import#0" in out and "finished" in out and '{"rows": 3}' in out
    assert "t_report#0" in out and "RuntimeError: report engine down" in out and "0/1 fired" in out
    assert "t_publish" in out and "waiting" in out and "reviewed, t_report" in out
    assert "\x1b[" not in out, "no colour codes when not a terminal"


def test_inspect_json_for_scripts(app: Celery) -> None:
    result = run(app, "inspect", "s-1", "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    tasks = {t["task"]: t for t in view["tasks"]}
    assert view["session"] == "s-1" and view["unresolved"] == 1
    assert tasks["t_import"]["instances"][0]["consumed"] == ["data", "start"]
    assert tasks["t_import"]["instances"][0]["kwargs"] == {"data": {"file": "a.csv"}, "start": {}}
    report = tasks["t_report"]["instances"][0]
    assert report["status"] == "failed" and report["exception"]["type"] == "RuntimeError"
    assert report["exception"]["message"] == "report engine down" and "Traceback" in report["traceback"]
    assert report["task_id"] and report["timestamps"]["failed"] >= report["timestamps"]["created"] > 0
    assert tasks["t_report"]["unless"] == {"triggers": ["cancelled"], "fired": [], "held": False}
    assert tasks["t_publish"]["status"] == "waiting" and tasks["t_publish"]["awaiting"] == ["reviewed", "t_report"]
    assert {t["trigger"]: t["count"] for t in view["triggers"]} == {"data": 1, "start": 1, "t_import": 1}


def test_inspect_json_schema_is_pinned(app: Celery) -> None:
    """The layout of ``inspect --json`` (docs/inspect-schema.md): a change
    to these keys is a new schema version."""
    view = json.loads(run(app, "inspect", "s-1", "--json").output)
    assert view["schema"] == "celery-triggers.inspect/1"
    assert sorted(view) == ["instances", "schema", "session", "tasks", "triggers", "unresolved"]
    task = view["tasks"][0]
    assert sorted(task) == ["awaiting", "instances", "known", "run", "status", "task", "unless"]
    assert sorted(task["unless"]) == ["fired", "held", "triggers"]
    assert sorted(view["triggers"][0]) == ["count", "kwargs", "trigger"]
    instance = task["instances"][0]
    assert sorted(instance) == [
        "age_seconds",
        "attempts",
        "awaiting",
        "consumed",
        "exception",
        "hostname",
        "instance",
        "kwargs",
        "parent",
        "replayed_by",
        "result",
        "status",
        "summary",
        "task_id",
        "timestamps",
        "traceback",
    ]
    assert sorted(instance["timestamps"]) == ["created", "failed", "finished", "scheduled", "started"]


def test_inspect_watch_returns_once_everything_is_resolved(app: Celery) -> None:
    app.triggers.session("s-1").skip_failed_instance("t_report#0")
    result = run(app, "inspect", "s-1", "--watch", "--interval", "0.01", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["unresolved"] == 0


def test_sessions_lists_counts_and_filters_unresolved(app: Celery) -> None:
    app.triggers.session("s-2").fire("nothing-listens")
    began = time.time()  # stored times have millisecond steps: s-3's change comes after s-1's
    wait_for(lambda: time.time() - began > 0.002, what="the clock to move")
    app.triggers.session("s-3").fire("start")
    table = run(app, "sessions")
    assert table.exit_code == 0 and "s-1" in table.output and "failed 1" in table.output
    rows = json.loads(run(app, "sessions", "--unresolved", "--json").output)
    assert [r["session"] for r in rows] == ["s-1", "s-3"]
    failed = json.loads(run(app, "sessions", "--status", "failed", "--json").output)
    assert [r["session"] for r in failed] == ["s-1"]
    largest = run_apart(app, "sessions", "--sort", "instances", "--limit", "1", "--json")
    assert [r["session"] for r in json.loads(largest.stdout)] == ["s-1"]
    assert largest.stderr == "2 more session(s) not shown (--limit 1)\n", "said apart from the JSON"
    recent = json.loads(run(app, "sessions", "--sort", "last-activity", "--json").output)
    assert recent[0]["session"] == "s-3" and len(recent) == 3
    bad = run(app, "sessions", "--status", "broken")
    assert bad.exit_code == 2 and "'broken' is not a status" in bad.output
    assert rows[0]["counts"] == {"failed": 1, "finished": 1} and rows[0]["last_activity"] > 0


def test_fire_replay_and_skip(app: Celery) -> None:
    fired = run(app, "fire", "s-9", "start", "--kwargs", '{"by": "cli"}')
    assert fired.exit_code == 0 and fired.output.strip() == "fired start in s-9: scheduled nothing"
    assert app.triggers.session("s-9").instances["t_import#0"].kwargs == {"start": {"by": "cli"}}

    replayed = run(app, "replay", "s-1", "t_report#0", "--kwargs", '{"t_import": {"rows": 0}}')
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output.strip() == "replayed t_report#0 as t_report#1 (finished)", "as it ended (eager runner)"
    assert app.triggers.session("s-1").instances["t_report#1"].status is Status.FINISHED

    run(app, "fire", "s-4", "start")
    run(app, "fire", "s-4", "data")
    skipped = run(app, "skip", "s-4", "t_report#0", "--cascade", "--result", '{"pages": 0}')
    assert skipped.exit_code == 0 and skipped.output.strip() == "skipped t_report#0 (cascaded)"
    assert app.triggers.session("s-4").instances["t_publish#0"].kwargs == {"t_report": {"pages": 0}}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["inspect", "nope"], 1, "no session 'nope' in storage memory://"),
        (["replay", "s-1", "t_report#7"], 1, "no instance 't_report#7'"),
        (["replay", "s-1", "t_import#0"], 1, "t_import#0 is finished; only a failed instance can be replayed"),
        (["skip", "s-1", "t_import#0"], 1, "only a failed instance can be skipped"),
        (["fire", "s-1", "x", "--kwargs", "{bad"], 2, "Invalid value for --kwargs: not valid JSON"),
        (["fire", "s-1", "x", "--kwargs", "[1]"], 2, "must be a JSON object"),
        (["replay", "s-1", "t_report#0", "--kwargs", "nope"], 2, "not valid JSON"),
        (["skip", "s-1", "t_report#0", "--result", "{"], 2, "Invalid value for --result"),
        (["graph", "--format", "png"], 2, "Invalid value for '--format'"),
        (["inspect"], 2, "Missing argument 'SESSION'"),
    ],
)
def test_refusals_and_usage_errors(app: Celery, args: list[str], code: int, message: str) -> None:
    before = app.triggers.session("s-1").debug_repr()
    result = run(app, *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    if code == 1:
        assert result.output.count("\n") == 1, "one clear line"
    assert app.triggers.session("s-1").debug_repr() == before


def test_redispatch_resends_only_old_scheduled_instances() -> None:
    queue_name = f"redispatch-{uuid.uuid4().hex[:8]}"  # the memory broker is process-wide: a queue of its own
    app = make_app(runner="celery", task_default_queue=queue_name)  # no worker: messages wait

    @trigger_task(after=["go"], name="t_wait")
    @app.task(shared=False, name="cli.wait")
    def wait() -> None: ...

    app.triggers.session("r").fire("unrelated")
    assert run(app, "redispatch", "r").output.strip() == "re-sent 0 instance(s), skipped 0"
    app.triggers.session("r").fire("go")
    first = app.triggers.session("r").instances["t_wait#0"].metadata["task_id"]
    younger = run(app, "redispatch", "r").output.splitlines()
    assert younger == [
        "r t_wait#0 (scheduled): skipped, scheduled 0 s ago, younger than --older-than 60",
        "re-sent 0 instance(s), skipped 1",
    ], "it says why nothing was sent"
    dry = run(app, "redispatch", "--all", "--older-than", "0", "--dry-run").output.splitlines()
    assert dry[-1] == "would re-send 1 instance(s), skipped 0"
    assert app.triggers.session("r").instances["t_wait#0"].metadata["task_id"] == first, "a dry run sends nothing"
    result = run(app, "redispatch", "r", "--older-than", "0")
    second = app.triggers.session("r").instances["t_wait#0"].metadata["task_id"]
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == f"r t_wait#0 (scheduled): redispatched, re-sent as {second}"
    assert run(app, "redispatch").exit_code == 2, "SESSION(s) or --all"
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(queue_name)
        ids = [queue.get(timeout=1).headers["id"] for _ in range(2)]
        queue.close()
    assert second != first and ids == [first, second], "a new dispatch token: the original is now stale"


def test_graph_mermaid_structure(app: Celery) -> None:
    out = run(app, "graph").output
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    nodes = {
        line.split("[", 1)[1].strip('()[]"'): line.split("[")[0].strip().rstrip("(")
        for line in lines[1:]
        if "[" in line and "--" not in line
    }
    assert set(nodes) == {"cancelled", "data", "reviewed", "start", "t_import", "t_publish", "t_report"}
    assert f"  {nodes['cancelled']} -.->|unless| {nodes['t_report']}" in lines
    assert f"  {nodes['t_import']} --> {nodes['t_report']}" in lines
    assert f"  {nodes['start']} --> {nodes['t_import']}" in lines
    coloured = run(app, "graph", "s-1").output
    assert f"class {nodes['t_report']} failed" in coloured and f"class {nodes['t_import']} finished" in coloured
    assert "classDef failed fill:" in coloured
    assert f"class {nodes['start']} fired" in coloured and f"class {nodes['reviewed']} unfired" in coloured
    assert '  subgraph legend["legend"]' in coloured and "    legend_failed[failed]" in coloured
    assert "legend" not in out, "no legend without a session"


def test_graph_dot_is_accepted_by_graphviz(app: Celery, tmp_path: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        if IN_CI:
            pytest.fail("CI=true: graphviz's dot is not installed (apt-get install graphviz)")
        pytest.skip("graphviz's dot is not installed")
    for args in (["graph", "--format", "dot"], ["graph", "s-1", "--format", "dot"]):
        source = run(app, *args).output
        assert source.startswith("digraph workflow {")
        rendered = subprocess.run([dot, "-Tsvg"], input=source, capture_output=True, text=True, timeout=60)
        assert rendered.returncode == 0, rendered.stderr
        assert "<svg" in rendered.stdout and "t_report" in rendered.stdout
    assert '"cancelled" -> "t_report" [style=dashed, label="unless"];' in source
    assert '"t_report" [shape=box, style=filled, fillcolor="#f4a6a6"];' in source, "status as fill colour, no label"
    assert '"start" [shape=ellipse, style=filled, fillcolor="#495057", fontcolor=white];' in source
    assert '"reviewed" [shape=ellipse, style=dashed];' in source, "not fired yet: dashed"
    assert "subgraph cluster_legend {" in source and '"legend: failed" [label="failed"' in source


def test_validate_ok_and_problems() -> None:
    app = make_app()

    @trigger_task(after=["a"], name="t_ok", extras={"priority": 3, "owner": "ops"})
    @app.task(shared=False, name="v.ok")
    def ok() -> None: ...

    good = run(app, "validate")
    assert good.exit_code == 0 and good.output.splitlines() == [
        "1 trigger task(s); external triggers the app must fire:",
        "  a",
        "custom directives kept on t_ok: owner, priority",
        "ok",
    ]
    app.triggers.configure(
        {
            "t_ghost": {"after": ["a"], "run": "v.not_registered"},
            "t_x": {"after": ["t_y"], "run": "v.ok"},
            "t_y": {"after": ["t_x"], "run": "v.ok"},
            "t_downstream": {"after": ["t_y"], "run": "v.ok"},
            "t_doomed": {"after": ["a", "b"], "unless": ["b"], "run": "v.ok"},
            "t_typo": {"after": ["t_okk"], "run": "v.ok"},
        }
    )
    bad = run(app, "validate")
    assert bad.exit_code == 1
    out = bad.output
    assert "error: t_ghost: runs 'v.not_registered', which is not a registered Celery task" in out
    assert "error: t_x: cascade cycle: t_x -> t_y -> t_x (none of them can run)" in out
    assert "error: t_downstream: can never run: it waits for a task in a cascade cycle" in out
    assert "error: t_doomed: can never run: its unless triggers ['b'] are all among its after triggers" in out
    assert "warning: t_typo: waits for 't_okk', which looks like a trigger task but none is configured" in out
    assert "  b\n" in out and "  t_okk\n" in out


def test_a_real_celery_subprocess_inspects_the_survey_session(survey_example: ExampleRun) -> None:
    """`celery -A proj triggers inspect SESSION --json` as an operator runs
    it, on the session the survey example ran."""
    uid = survey_example.session
    env = {**survey_example.env, "PYTHONPATH": f"{ROOT / 'examples' / 'survey'}{os.pathsep}{ROOT}"}
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "proj", "triggers", "inspect", uid, "--json"],
        cwd=ROOT / "examples" / "survey",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["session"] == uid and view["instances"] == 2 and view["unresolved"] == 0
    tasks = {t["task"]: t for t in view["tasks"]}
    assert tasks["t_computeScore"]["instances"][0]["status"] == "finished"
    assert tasks["t_computeScore"]["instances"][0]["consumed"] == ["sessionFinalized", "t_createApplicant"]
    assert tasks["t_createApplicant"]["instances"][0]["result"] == {"applicant_id": "A-S-42", "observations": 5}
    missing = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "proj", "triggers", "inspect", "no-such-session"],
        cwd=ROOT / "examples" / "survey",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "no session 'no-such-session'" in missing.stderr


def test_purge_and_delete_sessions(app: Celery) -> None:
    app.triggers.session("s-2").fire("cancelled")
    app.triggers.session("s-3").fire("data")  # t_import#0 awaits start: not resolved
    assert run(app, "purge", "--older-than", "1h").output.splitlines() == ["purged 0 session(s)"]
    for bad in ("-1", "7x", "soon"):
        result = run(app, "purge", "--older-than", bad)
        assert result.exit_code == 2 and "--older-than" in result.output, bad
    dry = run(app, "purge", "--older-than", "0s", "--resolved-only", "--dry-run").output.splitlines()
    assert dry == ["s-2", "would purge 1 session(s)"], "s-1 and s-3 have unresolved instances"
    assert app.triggers.storage.sessions() == ["s-1", "s-2", "s-3"], "a dry run deletes nothing"
    result = run(app, "delete", "s-2", "nope")
    assert result.exit_code == 1 and "no session 'nope'" in result.output
    assert "s-2" in app.triggers.storage.sessions(), "a bad name deletes nothing"
    result = run(app, "delete", "s-2")
    assert result.exit_code == 0 and result.output == "deleted s-2\n"
    assert app.triggers.storage.sessions() == ["s-1", "s-3"]
    assert json.loads(run(app, "purge", "--older-than", "0", "--json").output) == ["s-1", "s-3"]


def test_piped_output_is_plain_one_record_per_line(app: Celery) -> None:
    """Not a terminal: a title, a header, one tab-separated record per line;
    no folding, no padding, no colour, however long a cell is."""
    long_kwargs = json.dumps({"file": "x" * 300})
    app.triggers.session("s-long").fire("data", json.loads(long_kwargs))  # t_import#0 awaits "start"
    for args, records in ((["inspect", "s-1"], 3), (["sessions"], 2), (["inspect", "s-long", "--traceback"], 3)):
        out = run(app, *args).output
        lines = out.splitlines()
        assert all(line == line.rstrip() for line in lines), f"no trailing spaces in {args}"
        assert "\x1b[" not in out
        end = next((n for n, line in enumerate(lines) if line.endswith("trigger(s) fired")), len(lines))
        header, rows = lines[1], lines[2:end]
        assert len(rows) == records and all(row.count("\t") == header.count("\t") for row in rows), args
    assert "s-long (1 instance, 1 unresolved)" in run(app, "inspect", "s-long").output, "1 instance, not 1 instances"


def test_inspect_traceback_prints_each_failed_instances_traceback(app: Celery) -> None:
    out = run(app, "inspect", "s-1", "--traceback").output
    assert "traceback of t_report#0:" in out
    assert "Traceback (most recent call last)" in out and out.rstrip().endswith("RuntimeError: report engine down")
    assert "traceback of" not in run(app, "inspect", "s-1").output


def test_replay_merges_per_trigger_replaces_on_request_and_dry_runs(app: Celery) -> None:
    dry = run(app, "replay", "s-1", "t_report#0", "--kwargs", '{"note": {"by": "ops"}}', "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.strip() == (
        "would replay t_report#0 (failed): a new instance of t_report would run with kwargs "
        '{"note": {"by": "ops"}, "t_import": {"rows": 3}}; nothing was changed (--dry-run)'
    )
    session = app.triggers.session("s-1")
    assert session.instances["t_report#0"].status is Status.FAILED, "a dry run changes nothing"
    both = run(app, "replay", "s-1", "t_report#0", "--kwargs", "{}", "--replace-kwargs", "{}")
    assert both.exit_code == 2 and "not both" in both.output

    merged = run(app, "replay", "s-1", "t_report#0", "--kwargs", '{"note": {"by": "ops"}}')
    assert merged.exit_code == 0, merged.output
    clone = session.instances["t_report#1"]
    assert clone.kwargs == {"note": {"by": "ops"}, "t_import": {"rows": 3}} and clone.status is Status.FAILED

    replaced = run(app, "replay", "s-1", "t_report#1", "--replace-kwargs", '{"t_import": {"rows": 4}}')
    assert replaced.output.strip() == "replayed t_report#1 as t_report#2 (finished)", "as it ended (eager runner)"
    assert session.instances["t_report#2"].kwargs == {"t_import": {"rows": 4}}
    assert session.instances["t_report#2"].status is Status.FINISHED


def test_replay_in_python_keeps_the_original_meaning_and_merges_on_request(app: Celery) -> None:
    session = app.triggers.session("s-1")
    clone = session.replay_failed_instance("t_report#0", {"note": {}})
    assert session.instances[clone.name].kwargs == {"note": {}}, "replacement_kwargs replaces them all"
    session.update_instance_status(clone.name, "failed")
    merged = session.replay_failed_instance(clone.name, kwargs_update={"t_import": {"rows": 3}})
    assert session.instances[merged.name].kwargs == {"note": {}, "t_import": {"rows": 3}}


def test_a_repeated_one_shot_trigger_is_recorded_and_shown(app: Celery) -> None:
    app.triggers.session("s-1").fire("data", {"file": "b.csv"})  # t_import#0 consumed "data" already
    out = run(app, "inspect", "s-1").output.splitlines()
    at = out.index("3 trigger(s) fired")
    assert out[at + 1 :] == [
        "trigger\ttimes fired\tlast kwargs",
        'data\t2\t{"file": "b.csv"}',
        "start\t1\t{}",
        't_import\t1\t{"rows": 3}',
    ]


def test_the_session_graph_renders_in_a_real_browser(app: Celery, tmp_path: Path) -> None:
    """graphviz's SVG of a session graph, screenshotted by headless Chromium:
    the status fills, the fired-trigger fill and the legend are on screen."""
    dot, chromium = shutil.which("dot"), shutil.which("chromium") or shutil.which("chromium-browser")
    if dot is None or chromium is None:
        message = "graphviz's dot and chromium are needed (apt-get install graphviz chromium)"
        if IN_CI:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    from PIL import Image

    svg = tmp_path / "graph.svg"
    source = run(app, "graph", "s-1", "--format", "dot").output
    svg.write_text(subprocess.run([dot, "-Tsvg"], input=source, capture_output=True, text=True, check=True).stdout)
    png = tmp_path / "graph.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1100,400",
            svg.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = Image.open(png).convert("RGB")
    colours = {colour for _, colour in pixels.getcolors(maxcolors=1_000_000) or []}
    for name, rgb in {
        "failed": (0xF4, 0xA6, 0xA6),
        "finished": (0xB7, 0xE4, 0xC7),
        "fired": (0x49, 0x50, 0x57),
    }.items():
        assert rgb in colours, f"the {name} fill is drawn"


#: Names stored before control characters were refused (old data).
OLD_UID = "inj\nFAKE-LINE injected"
OLD_TASK = "t_\x1b[31mevil\nFAKE-TASK"
OLD_TRIGGER = "go\rFAKE-TRIGGER\u202e"


def _store_old_session(app: Celery) -> None:
    """A session with such names, its own config and a fired trigger,
    written through the storage layer as an older version would have."""
    import time

    from celery_triggers.core import engine
    from celery_triggers.core.config import parse_configs

    raw = {OLD_TASK: {"after": [OLD_TRIGGER], "run": "cli.import"}}
    configs = parse_configs(raw, stored=True)

    def write(txn: Any) -> None:
        txn.write_configs(raw)
        txn.write(
            engine.fire(txn.load(engine.needs_for_fire(configs, OLD_TRIGGER)), configs, OLD_TRIGGER, {}, time.time())
        )

    app.triggers.storage.bind(OLD_UID).atomic(write)


def _assert_no_forged_line(output: str) -> None:
    lines = output.splitlines()  # splits on \r, \x1c-\x1e, \u2028 too
    assert not [line for line in lines if line.lstrip().startswith("FAKE")], output
    assert not set(output) & {"\x1b", "\r", "\u202e"}, output


@pytest.mark.parametrize("terminal", [False, True])
def test_stored_names_with_control_characters_are_shown_escaped(
    app: Celery, terminal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a session stored with a newline in its UID and control
    characters in its task and trigger names, every command writes them
    escaped, plain or as rich tables: no stored name makes a line of its own."""
    from celery_triggers.cli import render

    _store_old_session(app)
    monkeypatch.setattr(render, "is_terminal", lambda: terminal)
    monkeypatch.setenv("COLUMNS", "400")  # rich: no folding inside a cell
    inspect = run(app, "inspect", OLD_UID)
    assert inspect.exit_code == 0, inspect.output
    _assert_no_forged_line(inspect.output)
    assert "inj\\nFAKE-LINE injected" in inspect.output
    assert "t_\\x1b[31mevil\\nFAKE-TASK#0" in inspect.output and "go\\rFAKE-TRIGGER\\u202e" in inspect.output
    listing = run(app, "sessions")
    assert listing.exit_code == 0, listing.output
    _assert_no_forged_line(listing.output)
    assert "inj\\nFAKE-LINE injected" in listing.output and "s-1" in listing.output


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_stored_names_with_control_characters_are_escaped_in_graphs(app: Celery, fmt: str) -> None:
    _store_old_session(app)
    result = run(app, "graph", OLD_UID, "--format", fmt)
    assert result.exit_code == 0, result.output
    _assert_no_forged_line(result.output)
    task, trigger = "t_\\x1b[31mevil\\nFAKE-TASK", "go\\rFAKE-TRIGGER\\u202e"
    if fmt == "dot":  # DOT reads a backslash as an escape: doubled, shown as written
        task, trigger = task.replace("\\", "\\\\"), trigger.replace("\\", "\\\\")
    assert task in result.output and trigger in result.output
    if fmt == "dot" and shutil.which("dot"):
        rendered = subprocess.run(["dot", "-Tsvg"], input=result.output, capture_output=True, text=True, timeout=60)
        assert rendered.returncode == 0, rendered.stderr
        assert ">t_\\x1b[31mevil\\nFAKE&#45;TASK</text>" in rendered.stdout, "drawn as written, on one line"


def shared_storage_apps(tmp_path: Path) -> tuple[Celery, Celery]:
    """Two apps on one storage: the worker's, with four trigger tasks, and
    an operator's that declares only two of them (its CLI's app)."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    worker_app, cli_app = make_app(url), make_app(url)
    for app in (worker_app, cli_app):

        @trigger_task(after=["go"], name="t_first")
        @app.task(shared=False, name="shared.first")
        def first() -> int:
            return 1

        @trigger_task(after=["t_first", "t_second"], name="t_last")
        @app.task(shared=False, name="shared.last")
        def last() -> int:
            return 3

    @trigger_task(after=["go"], name="t_second")
    @worker_app.task(shared=False, name="shared.second")
    def second() -> None:
        raise RuntimeError("second failed")

    @trigger_task(after=["go", "later"], name="t_waiting")
    @worker_app.task(shared=False, name="shared.waiting")
    def waiting() -> None: ...

    worker_app.triggers.session("mixed").fire("go")
    worker_app.triggers.session("mixed").skip_failed_instance("t_second#0", cascade=True)
    stored = worker_app.triggers.session("mixed").instances
    assert {n: i.status.value for n, i in stored.items()} == {
        "t_first#0": "finished",
        "t_second#0": "skipped",
        "t_waiting#0": "unstarted",
        "t_last#0": "finished",
    }
    return worker_app, cli_app


def test_inspect_lists_every_stored_instance_and_marks_tasks_the_app_does_not_know(tmp_path: Path) -> None:
    """Storage is the truth: a session of 4 instances lists 4, even where
    the CLI's app has no config for two of their tasks."""
    _, cli_app = shared_storage_apps(tmp_path)
    view = json.loads(run(cli_app, "inspect", "mixed", "--json").output)
    assert view["instances"] == 4 == sum(len(t["instances"]) for t in view["tasks"])
    tasks = {t["task"]: t for t in view["tasks"]}
    assert [t["task"] for t in view["tasks"]] == ["t_first", "t_last", "t_second", "t_waiting"]
    assert tasks["t_first"]["known"] is True and tasks["t_first"]["run"] == "shared.first"
    unknown = tasks["t_second"]
    assert unknown["known"] is False and unknown["run"] is None and unknown["status"] == "skipped"
    assert [i["instance"] for i in unknown["instances"]] == ["t_second#0"]
    assert unknown["unless"] == {"triggers": [], "fired": [], "held": False} and unknown["awaiting"] == []
    assert tasks["t_waiting"]["instances"][0]["consumed"] == ["go"]
    assert tasks["t_waiting"]["status"] == "unstarted" and view["unresolved"] == 1

    table = run(cli_app, "inspect", "mixed")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith("session mixed (4 instances, 1 unresolved; 2 tasks unknown to this app: ")
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[2:6]}
    assert set(rows) == {"t_first#0", "t_last#0", "t_second#0 (unknown task)", "t_waiting#0 (unknown task)"}
    assert rows["t_second#0 (unknown task)"][1] == "skipped"


def test_sessions_and_graph_count_and_draw_instances_of_unknown_tasks(tmp_path: Path) -> None:
    _, cli_app = shared_storage_apps(tmp_path)
    (row,) = json.loads(run(cli_app, "sessions", "--json").output)
    assert row["instances"] == 4 and row["counts"] == {"finished": 2, "skipped": 1, "unstarted": 1}
    drawn = run(cli_app, "graph", "mixed")
    assert drawn.exit_code == 0, drawn.output
    nodes = {line.strip() for line in drawn.output.splitlines() if line.strip().startswith("n")}
    assert 'n0(["go"])' in nodes and any(line.endswith('["t_second"]') for line in nodes), drawn.output
    assert any(line.endswith('["t_waiting"]') for line in nodes), "a task with instances is drawn as a task"
    assert "class legend_skipped skipped" in drawn.output and "class legend_unstarted unstarted" in drawn.output
    dot = run(cli_app, "graph", "mixed", "--format", "dot")
    assert dot.exit_code == 0 and '"t_second" [shape=box, style=filled' in dot.output


@pytest.mark.parametrize("args", [["sessions"], ["inspect", "s1"], ["fire", "s1", "go"], ["validate"]])
def test_an_app_that_never_called_triggers_is_refused_naming_it(tmp_path: Path, args: list[str]) -> None:
    bare = Celery("bare", set_as_current=False, broker="memory://")
    result = run(bare, *args)
    assert result.exit_code == 1, result.output
    assert "Triggers(app)" in result.output and "'bare'" in result.output
    assert "triggers" not in bare.__dict__, "nothing was installed on it"


def test_redispatch_right_after_a_refused_message_sends_it_without_older_than(tmp_path: Path) -> None:
    """Given a fire whose message the broker refused (a missing broker folder),
    when the broker is back, `redispatch SESSION` re-sends it at once (no
    --older-than 0), and only it: a message sent fine is still too young."""
    from celery_triggers import DispatchError

    folder = tmp_path / "broker"
    app = make_app(
        storage=f"sqlite:///{tmp_path / 'triggers.sqlite3'}",
        runner="celery",
        broker_url="filesystem://localhost//",
        broker_transport_options={"data_folder_in": str(folder), "data_folder_out": str(folder)},
        task_publish_retry=False,
    )
    app.triggers.configure({"t_a": {"after": ["a"], "run": "cli.a"}, "t_b": {"after": ["b"], "run": "cli.b"}})
    session = app.triggers.session("refused")
    with pytest.raises(DispatchError):
        session.fire("a")
    folder.mkdir()
    session.fire("b")  # sent fine
    refused_token = session.instances["t_a#0"].metadata["task_id"]
    swept = {a.instance: a.action for a in app.triggers.recover(["refused"], dry_run=True)}
    assert swept.get("t_a#0") == "redispatched" and swept.get("t_b#0") != "redispatched", swept

    result = run(app, "redispatch", "refused", "--json")
    assert result.exit_code == 0, result.output
    actions = {a["instance"]: a for a in json.loads(result.output)}
    assert actions["t_a#0"]["action"] == "redispatched", actions
    assert actions["t_b#0"]["action"] == "skipped", actions
    assert session.instances["t_a#0"].metadata["task_id"] != refused_token
    again = {a["instance"]: a["action"] for a in json.loads(run(app, "redispatch", "refused", "--json").output)}
    assert again["t_a#0"] == "skipped", "sent fine this time: no longer eligible at once"


def test_inspect_table_shows_what_json_has(app: Celery) -> None:
    """Task id, worker hostname, start and end times and attempts are in the
    plain table too, as in --json."""
    (report,) = [t for t in json.loads(run(app, "inspect", "s-1", "--json").output)["tasks"] if t["task"] == "t_report"]
    data = report["instances"][0]
    lines = run(app, "inspect", "s-1").output.splitlines()
    header = lines[1].split("\t")
    assert {"task id", "worker", "started", "ended", "attempts"} <= set(header), header
    row = dict(zip(header, next(line.split("\t") for line in lines if line.startswith("t_report#0")), strict=True))
    assert row["task id"] == data["task_id"]
    assert row["worker"] == (data["hostname"] or "-")
    assert row["attempts"] == str(data["attempts"])
    failed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(data["timestamps"]["failed"]))
    assert row["ended"] == failed


def test_inspect_watch_ends_when_nothing_is_in_flight(app: Celery) -> None:
    """s-1 has a failed instance and a task waiting for a trigger: nothing a
    worker can still change, so --watch shows it once and ends."""
    import threading

    done: list[Result] = []
    watcher = threading.Thread(target=lambda: done.append(run(app, "inspect", "s-1", "--watch", "--interval", "0.05")))
    watcher.daemon = True
    watcher.start()
    watcher.join(10)
    assert done and done[0].exit_code == 0, "--watch ended"


def test_inspect_watch_gives_up_after_timeout_naming_what_is_in_flight() -> None:
    flight = make_app(runner="celery")
    flight.triggers.configure({"t_a": {"after": ["a"], "run": "cli.nowhere"}})
    flight.triggers.fire("in-flight", "a")  # scheduled; no worker
    started = time.monotonic()
    result = run(flight, "inspect", "in-flight", "--watch", "--interval", "0.05", "--timeout", "0.3")
    assert result.exit_code == 1 and time.monotonic() - started < 5
    assert "t_a#0 scheduled" in result.output and "0.3 s" in result.output


def test_json_keeps_non_ascii_text_and_the_table_prints_results_as_json_does() -> None:
    accents = make_app()

    @trigger_task(after=["signed"], name="t_greet")
    @accents.task(shared=False, name="cli.greet")
    def greet(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"greeting": f"Grüß Gott, {trigger_kwargs['signed']['name']}", "n": 1}

    accents.triggers.fire("accents", "signed", {"name": "José"})
    out = run(accents, "inspect", "accents", "--json").output
    assert "José" in out and "Grüß" in out and "\\u00e9" not in out
    (task,) = json.loads(out)["tasks"]
    result = task["instances"][0]["result"]
    table = run(accents, "inspect", "accents").output
    row = next(line.split("\t") for line in table.splitlines() if line.startswith("t_greet#0"))
    assert row[5] == json.dumps(result, ensure_ascii=False, sort_keys=True) == '{"greeting": "Grüß Gott, José", "n": 1}'
    assert '{"name": "José"}' in table, "fired kwargs too"
    sessions = run(accents, "sessions", "--json").output
    assert "\\u" not in sessions
