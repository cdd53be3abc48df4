"""Tables and colour with rich (plain text when not writing to a terminal)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from ..core.data import display_json, escape_text
from .views import age

__all__ = ["STATUS_STYLES", "console", "print_session", "print_sessions"]

STATUS_STYLES = {
    "finished": "green",
    "failed": "bold red",
    "running": "yellow",
    "scheduled": "cyan",
    "unstarted": "dim",
    "waiting": "dim",
    "abandoned": "magenta",
    "replayed": "magenta",
    "skipped": "magenta",
}


def is_terminal() -> bool:
    return sys.stdout.isatty()


def console() -> Any:
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - depends on the environment
        raise click.ClickException("tables need rich: pip install 'celery-triggers[cli]' (or use --json)") from None
    return Console(highlight=False, soft_wrap=False)


def _table(title: str, columns: list[str]) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _markup(text: str) -> str:
    """``text`` for a rich table cell: escaped (:func:`escape_text`), and its
    square brackets as rich markup wants."""
    from rich.markup import escape

    return str(escape(escape_text(text)))


def _status(status: str) -> str:
    style = STATUS_STYLES.get(status, "")
    return f"[{style}]{status}[/]" if style else status


def _plain(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """Not a terminal (a pipe, a file, a log): a title line, a header line
    and one record per line, fields separated by a tab, empty ones shown as
    ``-``; no colour, no folding, no padding. Names and messages are
    escaped (``\\n``, ``\\x1b``): no stored value makes a line of its own
    or moves the cursor."""
    click.echo(escape_text(title))
    for line in [columns, *rows]:
        click.echo("\t".join(escape_text(str(cell)).strip() or "-" for cell in line))


def _traceback(text: str) -> str:
    """A traceback's lines, each escaped (its exception message is anyone's text)."""
    return "\n".join(escape_text(line) for line in text.rstrip().split("\n"))


_TRIGGER_COLUMNS = ["trigger", "times fired", "last kwargs"]
_SESSION_COLUMNS = ["task / instance", "status", "consumed", "awaiting", "unless", "result / exception", "age"]
_SESSION_COLUMNS += ["task id", "worker", "started", "ended", "attempts"]
_ENDS = ("finished", "failed")


def _when(stamp: float | None) -> str:
    """A stored time as ISO 8601 in UTC (``Z``), to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)) if stamp else ""


def _run_cells(row: dict[str, Any]) -> list[str]:
    """What ``--json`` has of a run: task id, worker, start and end, attempts."""
    stamps = row["timestamps"]
    ended = next((stamps[end] for end in _ENDS if stamps.get(end)), None)
    return [
        row["task_id"] or "",
        row["hostname"] or "",
        _when(stamps.get("started")),
        _when(ended),
        str(row["attempts"]),
    ]


def _session_rows(view: dict[str, Any]) -> list[list[str]]:
    rows = []
    for task in view["tasks"]:
        unless = task["unless"]
        unless_text = ""
        if unless["triggers"]:
            unless_text = "held" if unless["held"] else f"{len(unless['fired'])}/{len(unless['triggers'])} fired"
        if not task["instances"]:
            rows.append([task["task"], task["status"], "", ", ".join(task["awaiting"]), unless_text, "", ""] + [""] * 5)
        mark = "" if task["known"] else " (unknown task)"
        for row in task["instances"]:
            rows.append(
                [
                    row["instance"] + mark,
                    row["status"],
                    ", ".join(row["consumed"]),
                    ", ".join(row["awaiting"]),
                    unless_text,
                    row["summary"],
                    age(row["age_seconds"]),
                    *_run_cells(row),
                ]
            )
    return rows


def print_session(view: dict[str, Any], storage: str, *, tracebacks: bool = False) -> None:
    n = view["instances"]
    unknown = [t["task"] for t in view["tasks"] if not t["known"]]
    note = f"; {len(unknown)} task{'' if len(unknown) == 1 else 's'} unknown to this app: {', '.join(unknown)}"
    title = (
        f"session {view['session']} ({n} instance{'' if n == 1 else 's'}, {view['unresolved']} unresolved"
        f"{note if unknown else ''}) in {storage}"
    )
    rows = _session_rows(view)
    failed = [i for t in view["tasks"] for i in t["instances"] if i["traceback"]] if tracebacks else []
    fired = [[t["trigger"], str(t["count"]), display_json(t["kwargs"])] for t in view["triggers"]]
    fired_title = f"{len(fired)} trigger(s) fired"
    if not is_terminal():
        _plain(title, _SESSION_COLUMNS, rows)
        _plain(fired_title, _TRIGGER_COLUMNS, fired)
        for instance in failed:
            click.echo(f"traceback of {escape_text(instance['instance'])}:")
            click.echo(_traceback(instance["traceback"]))
        return
    table = _table(_markup(title), _SESSION_COLUMNS)
    for row in rows:
        table.add_row(_markup(row[0]), _status(row[1]), *(_markup(cell) for cell in row[2:]))
    out = console()
    out.print(table)
    triggers = _table(fired_title, _TRIGGER_COLUMNS)
    for line in fired:
        triggers.add_row(*(_markup(cell) for cell in line))
    out.print(triggers)
    for instance in failed:
        out.print(f"[bold]traceback of {_markup(instance['instance'])}:[/bold]")
        out.print(_traceback(instance["traceback"]), markup=False)


_SESSIONS_COLUMNS = ["session", "instances", "by status", "last activity"]


def print_sessions(rows: list[dict[str, Any]], storage: str) -> None:
    now = time.time()
    lines = []
    for row in rows:
        if row.get("corrupt"):
            lines.append([row["session"], "-", f"corrupt: {row['corrupt']}", "-"])
            continue
        counts = ", ".join(f"{s} {n}" for s, n in row["counts"].items())
        last = row["last_activity"]
        lines.append([row["session"], str(row["instances"]), counts, age(now - last) + " ago" if last else "-"])
    title = f"{len(rows)} session(s) in {storage}"
    if not is_terminal():
        _plain(title, _SESSIONS_COLUMNS, lines)
        return
    table = _table(_markup(title), _SESSIONS_COLUMNS)
    for line, row in zip(lines, rows, strict=True):
        if row.get("corrupt"):
            table.add_row(_markup(line[0]), "-", f"[red]corrupt[/red]: {_markup(row['corrupt'])}", "-")
        else:
            counts = ", ".join(f"{_status(s)} {n}" for s, n in row["counts"].items())
            table.add_row(_markup(line[0]), line[1], counts, line[3])
    console().print(table)
