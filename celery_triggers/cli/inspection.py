"""The commands that read: ``inspect`` (one session, every task and
instance) and ``sessions`` (the sessions in storage, with counts)."""

from __future__ import annotations

import time

import click

from ..core.state import is_internal
from ..storage import mask_url
from .common import echo_json, existing_session, extension, refusals

__all__ = ["inspect", "sessions"]

_IN_FLIGHT = ("scheduled", "running")


@click.command()
@click.argument("session")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (schema: docs/inspect-schema.md).")
@click.option("--traceback", "tracebacks", is_flag=True, help="Print the traceback of each failed instance.")
@click.option("--watch", is_flag=True, help="Refresh until nothing is scheduled or running, or --timeout.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between refreshes (--watch).")
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=None, help="Seconds after which --watch gives up (exit code 1)."
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
) -> None:
    """Every task and instance of SESSION: status, kwargs, task id, worker,
    timestamps, attempts, result or exception, triggers consumed and
    awaited, unless state, fired triggers."""
    from .render import console, is_terminal, print_session
    from .views import session_view

    manager = existing_session(ctx, session)
    storage = mask_url(extension(ctx).storage_url)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            view = session_view(manager)
            if as_json:
                echo_json(view)
            else:
                if watch and is_terminal():
                    console().clear()
                print_session(view, storage, tracebacks=tracebacks)
            in_flight = [i for t in view["tasks"] for i in t["instances"] if i["status"] in _IN_FLIGHT]
            if not watch or not in_flight:
                return  # failed or unstarted instances wait for a person or a trigger, not for a worker
            if deadline is not None and time.monotonic() >= deadline:
                shown = ", ".join(f"{i['instance']} {i['status']}" for i in in_flight)
                raise click.ClickException(f"session {session!r}: still in flight after {timeout:g} s: {shown}")
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
    from .render import print_sessions
    from .views import sessions_view

    known = {s.value for s in Status}
    for status in statuses:
        if status not in known:
            raise click.BadParameter(f"{status!r} is not a status ({', '.join(sorted(known))})", param_hint="--status")
    ext = extension(ctx)
    rows = sessions_view(ext.storage, [u for u in ext.storage.sessions() if not is_internal(u)])
    if unresolved:
        rows = [r for r in rows if r["unresolved"]]
    if statuses:
        rows = [r for r in rows if set(statuses) & set(r["counts"])]
    if sort == "last-activity":
        rows.sort(key=lambda r: r["last_activity"] or 0, reverse=True)
    elif sort == "instances":
        rows.sort(key=lambda r: r["instances"] or 0, reverse=True)
    rows = rows[:limit] if limit else rows
    if as_json:
        echo_json(rows)
    else:
        print_sessions(rows, mask_url(ext.storage_url))
