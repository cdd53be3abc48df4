"""The commands that read: ``inspect`` (one session, every task and
instance) and ``sessions`` (the sessions in storage, with counts)."""

from __future__ import annotations

import time

import click

from ..storage import mask_url
from .common import echo_json, existing_session, extension, refusals

__all__ = ["inspect", "sessions"]


@click.command()
@click.argument("session")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (schema: docs/inspect-schema.md).")
@click.option("--traceback", "tracebacks", is_flag=True, help="Print the traceback of each failed instance.")
@click.option("--watch", is_flag=True, help="Refresh until every instance is resolved.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between refreshes (--watch).")
@click.option(
    "--rows",
    "max_rows",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Table: show at most this many rows, and how many instances are left out (0: all). --json lists all.",
)
@click.pass_context
@refusals
def inspect(
    ctx: click.Context, session: str, as_json: bool, tracebacks: bool, watch: bool, interval: float, max_rows: int
) -> None:
    """Every task and instance of SESSION: status, kwargs, task id, worker,
    timestamps, attempts, result or exception, triggers consumed and
    awaited, unless state, fired triggers. Instances are read a batch at a
    time and printed as they come (--json): memory does not grow with the
    session."""
    from .jsonstream import echo_stream
    from .render import console, is_terminal, print_session
    from .views import session_doc

    manager = existing_session(ctx, session)
    storage = mask_url(extension(ctx).storage_url)
    try:
        while True:
            if as_json:
                view = session_doc(manager)
                echo_stream(view)
                unresolved = view["unresolved"].get()
            else:
                if watch and is_terminal():
                    console().clear()
                unresolved = print_session(
                    session_doc(manager, count=0), storage, tracebacks=tracebacks, max_rows=max_rows
                )
            if not watch or unresolved == 0:
                return
            time.sleep(max(interval, 0.1))
    except KeyboardInterrupt:
        return


@click.command()
@click.option("--unresolved", is_flag=True, help="Only sessions with unresolved instances.")
@click.option("--status", "statuses", multiple=True, help="Only sessions with an instance in this status (repeatable).")
@click.option(
    "--sort",
    type=click.Choice(["session", "last-activity", "instances"]),
    default="session",
    show_default=True,
    help="last-activity and instances: largest first.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most this many sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
@refusals
def sessions(
    ctx: click.Context, unresolved: bool, statuses: tuple[str, ...], sort: str, limit: int | None, as_json: bool
) -> None:
    """The sessions in storage, with counts by status and last activity."""
    from ..core.state import Status
    from .listing import select_sessions
    from .render import print_sessions

    known = {s.value for s in Status}
    for status in statuses:
        if status not in known:
            raise click.BadParameter(f"{status!r} is not a status ({', '.join(sorted(known))})", param_hint="--status")
    ext = extension(ctx)
    rows, note = select_sessions(ext.storage, unresolved=unresolved, statuses=statuses, sort=sort, limit=limit)
    if as_json:
        echo_json(rows)
        if note:  # stderr: the JSON on stdout stays a list of rows
            click.echo(note, err=True)
    else:
        print_sessions(rows, mask_url(ext.storage_url), note)
