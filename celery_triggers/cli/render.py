"""Tables and colour with rich (plain text when not writing to a terminal)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import click

from ..core.data import display_json, escape_text
from ..core.state import RESOLVED, Status
from .jsonstream import Later, Stream
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


def _session_rows(view: dict[str, Any], seen: dict[str, Any]) -> Iterator[tuple[list[str], dict[str, Any] | None]]:
    """The table's rows (each with its instance, None for a task without
    one), reading the view's streams; ``seen`` gathers what the title says
    (instances, unresolved, tasks unknown to this app)."""
    for task in _items(view["tasks"]):
        unless = task["unless"]
        unless_text = ""
        if unless["triggers"]:
            unless_text = "held" if unless["held"] else f"{len(unless['fired'])}/{len(unless['triggers'])} fired"
        mark = "" if task["known"] else " (unknown task)"
        if not task["known"]:
            seen["unknown"].append(task["task"])
        empty = True
        for row in _items(task["instances"]):
            empty = False
            seen["instances"] += 1
            seen["unresolved"] += Status(row["status"]) not in RESOLVED
            yield (
                [
                    row["instance"] + mark,
                    row["status"],
                    ", ".join(row["consumed"]),
                    ", ".join(row["awaiting"]),
                    unless_text,
                    row["summary"],
                    age(row["age_seconds"]),
                    *_run_cells(row),
                ],
                row,
            )
        if empty:
            status = _value(task["status"])
            yield [task["task"], status, "", ", ".join(task["awaiting"]), unless_text, "", "", *[""] * 5], None


def _items(value: Any) -> Iterable[Any]:
    return value.items if isinstance(value, Stream) else value


def _value(value: Any) -> Any:
    return value.get() if isinstance(value, Later) else value


def print_session(view: dict[str, Any], storage: str, *, tracebacks: bool = False, max_rows: int = 0) -> int:
    """``inspect``'s tables. ``view``: :func:`.views.session_doc` (read
    once, a batch of instances at a time) or :func:`.views.session_view`.
    ``max_rows``: show at most this many rows (0: all), and say how many
    instances are left out (the others are read, to count them, not kept).
    Returns how many instances are unresolved."""
    seen: dict[str, Any] = {"instances": 0, "unresolved": 0, "unknown": []}
    rows: list[list[str]] = []
    failed: list[dict[str, Any]] = []
    hidden = 0
    for row, instance in _session_rows(view, seen):
        if max_rows and len(rows) >= max_rows:
            hidden += instance is not None
            continue
        rows.append(row)
        if tracebacks and instance is not None and instance["traceback"]:
            failed.append(instance)
    n, unknown = seen["instances"], seen["unknown"]
    note = f"; {len(unknown)} task{'' if len(unknown) == 1 else 's'} unknown to this app: {', '.join(unknown)}"
    title = (
        f"session {view['session']} ({n} instance{'' if n == 1 else 's'}, {seen['unresolved']} unresolved"
        f"{note if unknown else ''}) in {storage}"
    )
    more = f"{hidden} more instance(s) not shown (--rows {max_rows}; --rows 0 shows all, --json lists all)"
    fired = [[t["trigger"], str(t["count"]), display_json(t["kwargs"])] for t in view["triggers"]]
    fired_title = f"{len(fired)} trigger(s) fired"
    if not is_terminal():
        _plain(title, _SESSION_COLUMNS, rows)
        if hidden:
            click.echo(more)
        _plain(fired_title, _TRIGGER_COLUMNS, fired)
        for instance in failed:
            click.echo(f"traceback of {escape_text(instance['instance'])}:")
            click.echo(_traceback(instance["traceback"]))
        return int(seen["unresolved"])
    table = _table(_markup(title), _SESSION_COLUMNS)
    for row in rows:
        table.add_row(_markup(row[0]), _status(row[1]), *(_markup(cell) for cell in row[2:]))
    out = console()
    out.print(table)
    if hidden:
        out.print(_markup(more))
    triggers = _table(fired_title, _TRIGGER_COLUMNS)
    for line in fired:
        triggers.add_row(*(_markup(cell) for cell in line))
    out.print(triggers)
    for instance in failed:
        out.print(f"[bold]traceback of {_markup(instance['instance'])}:[/bold]")
        out.print(_traceback(instance["traceback"]), markup=False)
    return int(seen["unresolved"])


_SESSIONS_COLUMNS = ["session", "instances", "by status", "last activity"]


def print_sessions(rows: list[dict[str, Any]], storage: str, note: str = "") -> None:
    """``sessions``'s table; ``note``: a last line (what ``--limit`` left out)."""
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
        if note:
            click.echo(note)
        return
    table = _table(_markup(title), _SESSIONS_COLUMNS)
    for line, row in zip(lines, rows, strict=True):
        if row.get("corrupt"):
            table.add_row(_markup(line[0]), "-", f"[red]corrupt[/red]: {_markup(row['corrupt'])}", "-")
        else:
            counts = ", ".join(f"{_status(s)} {n}" for s, n in row["counts"].items())
            table.add_row(_markup(line[0]), line[1], counts, line[3])
    out = console()
    out.print(table)
    if note:
        out.print(_markup(note))
