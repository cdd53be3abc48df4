"""Tables and colour with rich (plain text when not writing to a terminal)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

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


def console() -> Any:
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - depends on the environment
        raise click.ClickException("tables need rich: pip install 'celery-triggers[cli]' (or use --json)") from None
    # Not a terminal (a pipe, a log): no colour, and wide enough not to fold.
    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _table(title: str, columns: list[str]) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _status(status: str) -> str:
    style = STATUS_STYLES.get(status, "")
    return f"[{style}]{status}[/]" if style else status


def print_session(view: dict[str, Any], storage: str) -> None:
    out = console()
    table = _table(
        f"session {view['session']} ({view['instances']} instances, {view['unresolved']} unresolved) in {storage}",
        ["task / instance", "status", "consumed", "awaiting", "unless", "result / exception", "age"],
    )
    for task in view["tasks"]:
        unless = task["unless"]
        unless_text = ""
        if unless["triggers"]:
            unless_text = "held" if unless["held"] else f"{len(unless['fired'])}/{len(unless['triggers'])} fired"
        if not task["instances"]:
            table.add_row(task["task"], _status(task["status"]), "", ", ".join(task["awaiting"]), unless_text, "", "")
        for row in task["instances"]:
            table.add_row(
                row["instance"],
                _status(row["status"]),
                ", ".join(row["consumed"]),
                ", ".join(row["awaiting"]),
                unless_text,
                row["summary"],
                age(row["age_seconds"]),
            )
    out.print(table)


def print_sessions(rows: list[dict[str, Any]], storage: str) -> None:
    from rich.markup import escape

    out = console()
    table = _table(f"{len(rows)} session(s) in {storage}", ["session", "instances", "by status", "last activity"])
    now = time.time()
    for row in rows:
        if row.get("corrupt"):
            table.add_row(row["session"], "-", f"[red]corrupt[/red]: {escape(row['corrupt'])}", "-")
            continue
        counts = ", ".join(f"{_status(s)} {n}" for s, n in row["counts"].items())
        last = row["last_activity"]
        table.add_row(row["session"], str(row["instances"]), counts, age(now - last) + " ago" if last else "-")
    out.print(table)
