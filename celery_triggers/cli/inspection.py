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
@click.option("--watch", is_flag=True, help="Refresh until nothing is scheduled or running, or --timeout.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between refreshes (--watch).")
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=None, help="Seconds after which --watch gives up (exit code 1)."
)
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
    ctx: click.Context,
    session: str,
    as_json: bool,
    tracebacks: bool,
    watch: bool,
    interval: float,
    timeout: float | None,
    max_rows: int,
) -> None:
    """Every task and instance of SESSION: status, kwargs, task id, worker,
    timestamps, attempts, result or exception, triggers consumed and
    awaited, unless state, fired triggers. Instances are read a batch at a
    time and printed as they come (--json): memory does not grow with the
    session."""
    from .jsonstream import echo_stream
    from .render import console, is_terminal, print_session
    from .views import InFlight, session_doc

    manager = existing_session(ctx, session)
    storage = mask_url(extension(ctx).storage_url)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            in_flight = InFlight()
            if as_json:
                echo_stream(session_doc(manager, in_flight=in_flight))
            else:
                if watch and is_terminal():
                    console().clear()
                view = session_doc(manager, count=0, in_flight=in_flight)
                print_session(view, storage, tracebacks=tracebacks, max_rows=max_rows)
            if not watch or not in_flight.count:
                return  # failed or unstarted instances wait for a person or a trigger, not for a worker
            if deadline is not None and time.monotonic() >= deadline:
                raise click.ClickException(f"session {session!r}: still in flight after {timeout:g} s: {in_flight}")
            pause = max(interval, 0.1)
            time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
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
