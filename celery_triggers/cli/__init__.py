"""``celery -A proj triggers ...``: inspect, recover and draw sessions.

Registered through Celery's ``celery.commands`` entry point, so the app is
the one Celery loaded (``-A``, ``--broker``, config). Exit codes: 0 success,
1 refused or not found (one line on stderr), 2 usage.

An edge: may import every layer; nothing in the package imports it.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..core.data import escape_text
from ..core.errors import TriggersError
from ..storage import mask_url

__all__ = ["triggers"]

F = TypeVar("F", bound=Callable[..., Any])
_LOADED = "celery_triggers.project_loaded"


def _refusals(fn: F) -> F:
    """Turn our errors into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TriggersError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]  # same signature as fn


def _extension(ctx: click.Context) -> Any:
    """The extension of the app Celery loaded, its project loaded first
    as a worker loads it (task modules, Django: see ``cli/project.py``)."""
    from ..app.extension import Triggers

    app = getattr(ctx.obj, "app", None)
    if app is None:
        raise click.UsageError("no Celery app: run as `celery -A proj triggers ...`")
    ext = Triggers(app)
    if not ctx.meta.get(_LOADED):
        from .project import load_project

        load_project(app, ext.storage_url)
        ctx.meta[_LOADED] = True
    return ext


def _json_object(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint=what) from None


def _kwargs_option(value: str | None, what: str) -> dict[str, Any] | None:
    data = _json_object(value, what)
    if data is not None and not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint=what)
    return data


def _existing_session(ctx: click.Context, uid: str) -> Any:
    ext = _extension(ctx)
    manager = ext.session(uid)
    if not manager.instances and uid not in ext.storage.sessions():
        raise click.ClickException(f"no session {uid!r} in storage {mask_url(ext.storage_url)}")
    return manager


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@click.group(name="triggers")
def triggers() -> None:
    """Inspect, recover and draw celery-triggers sessions."""


@triggers.command()
@click.argument("session")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (schema: docs/inspect-schema.md).")
@click.option("--traceback", "tracebacks", is_flag=True, help="Print the traceback of each failed instance.")
@click.option("--watch", is_flag=True, help="Refresh until every instance is resolved.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between refreshes (--watch).")
@click.pass_context
@_refusals
def inspect(ctx: click.Context, session: str, as_json: bool, tracebacks: bool, watch: bool, interval: float) -> None:
    """Every task and instance of SESSION: status, kwargs, task id, worker,
    timestamps, attempts, result or exception, triggers consumed and
    awaited, unless state, fired triggers."""
    from .render import console, is_terminal, print_session
    from .views import session_view

    manager = _existing_session(ctx, session)
    storage = mask_url(_extension(ctx).storage_url)
    try:
        while True:
            view = session_view(manager)
            if as_json:
                _echo_json(view)
            else:
                if watch and is_terminal():
                    console().clear()
                print_session(view, storage, tracebacks=tracebacks)
            if not watch or view["unresolved"] == 0:
                return
            time.sleep(max(interval, 0.1))
    except KeyboardInterrupt:
        return


@triggers.command()
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
@_refusals
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
    ext = _extension(ctx)
    rows = sessions_view(ext.storage, [u for u in ext.storage.sessions() if not u.startswith("celery-triggers:")])
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
        _echo_json(rows)
    else:
        print_sessions(rows, mask_url(ext.storage_url))


@triggers.command()
@click.argument("session")
@click.argument("trigger")
@click.option("--kwargs", "kwargs_json", help="Trigger kwargs as a JSON object.")
@click.pass_context
@_refusals
def fire(ctx: click.Context, session: str, trigger: str, kwargs_json: str | None) -> None:
    """Fire TRIGGER in SESSION."""
    kwargs = _kwargs_option(kwargs_json, "--kwargs")
    scheduled = _extension(ctx).session(session).fire(trigger, kwargs)
    names = ", ".join(i.name for i in scheduled) or "nothing"
    click.echo(f"fired {trigger} in {session}: scheduled {names}")


@triggers.command()
@click.argument("session")
@click.argument("instance")
@click.option("--kwargs", "kwargs_json", help="Kwargs of the triggers it names, as JSON (the others are kept).")
@click.option("--replace-kwargs", "replace_json", help="All of the clone's kwargs (trigger -> kwargs), as JSON.")
@click.option("--dry-run", is_flag=True, help="Print the kwargs the clone would get; change nothing.")
@click.pass_context
@_refusals
def replay(
    ctx: click.Context, session: str, instance: str, kwargs_json: str | None, replace_json: str | None, dry_run: bool
) -> None:
    """Replay a failed INSTANCE of SESSION (a clone runs)."""
    from ..core.engine import replay_kwargs

    if kwargs_json is not None and replace_json is not None:
        raise click.UsageError("pass --kwargs (per-trigger) or --replace-kwargs (all), not both")
    update = _kwargs_option(kwargs_json, "--kwargs")
    replacement = _kwargs_option(replace_json, "--replace-kwargs")
    manager = _existing_session(ctx, session)
    if dry_run:
        failed = manager.instance(instance)
        if failed.status.value != "failed":
            raise click.ClickException(f"{instance} is {failed.status.value}; only a failed instance can be replayed")
        click.echo(json.dumps(replay_kwargs(failed, replacement, update), indent=2, sort_keys=True))
        return
    clone = manager.replay_failed_instance(instance, replacement, kwargs_update=update)
    click.echo(f"replayed {instance} as {clone.name} ({clone.status.value})")


@triggers.command()
@click.argument("session")
@click.argument("instance")
@click.option("--cascade", is_flag=True, help="Fire the task's name as if it had finished.")
@click.option("--result", "result_json", help="The simulated result, as JSON.")
@click.pass_context
@_refusals
def skip(ctx: click.Context, session: str, instance: str, cascade: bool, result_json: str | None) -> None:
    """Mark a failed INSTANCE of SESSION skipped."""
    result = _json_object(result_json, "--result")
    skipped = _existing_session(ctx, session).skip_failed_instance(instance, cascade=cascade, result=result)
    click.echo(f"skipped {skipped.name}" + (" (cascaded)" if cascade else ""))


def _sessions_option(fn: F) -> F:
    """SESSION... or --all, --older-than, --dry-run and --json."""
    for decorator in reversed(
        [
            click.argument("sessions", nargs=-1),
            click.option("--all", "all_sessions", is_flag=True, help="Every session in storage."),
            click.option(
                "--older-than",
                type=click.FloatRange(min=0),
                default=60.0,
                show_default=True,
                help="Only instances scheduled or started at least this many seconds ago.",
            ),
            click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing."),
            click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
        ]
    ):
        fn = decorator(fn)
    return fn


def _report(actions: list[Any], as_json: bool, dry_run: bool, what: tuple[str, str]) -> None:
    """One line per instance (what was done, or skipped and why), then a count."""
    if as_json:
        _echo_json([a.to_dict() for a in actions])
        return
    for action in actions:
        click.echo(str(action))
    done = sum(a.action != "skipped" for a in actions)
    verb = f"would {what[0]}" if dry_run else what[1]
    click.echo(f"{verb} {done} instance(s), skipped {len(actions) - done}")


def _chosen(sessions: tuple[str, ...], all_sessions: bool) -> tuple[str, ...] | None:
    if bool(sessions) == all_sessions:
        raise click.UsageError("name SESSION(s) or pass --all")
    return None if all_sessions else sessions


@triggers.command()
@_sessions_option
@click.pass_context
@_refusals
def redispatch(
    ctx: click.Context, sessions: tuple[str, ...], all_sessions: bool, older_than: float, dry_run: bool, as_json: bool
) -> None:
    """Re-send instances left `scheduled` (their message never reached a
    worker), each with a new task id: a late original runs nothing."""
    actions = _extension(ctx).redispatch(_chosen(sessions, all_sessions), older_than=older_than, dry_run=dry_run)
    _report(actions, as_json, dry_run, ("re-send", "re-sent"))


@triggers.command()
@_sessions_option
@click.pass_context
@_refusals
def recover(
    ctx: click.Context, sessions: tuple[str, ...], all_sessions: bool, older_than: float, dry_run: bool, as_json: bool
) -> None:
    """Resolve instances a crash or an outage left `scheduled` or `running`:
    from Celery's result backend when it knows the outcome, else re-send a
    lost message (new task id) or mark a dead run failed (WorkerLost)."""
    actions = _extension(ctx).recover(_chosen(sessions, all_sessions), older_than=older_than, dry_run=dry_run)
    _report(actions, as_json, dry_run, ("resolve", "resolved"))


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """Seconds, or a number with a unit: ``90``, ``45s``, ``30m``, ``12h``, ``7d``."""

    name = "duration"
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        text = str(value).strip().lower()
        unit = self._UNITS.get(text[-1:], None) if text else None
        try:
            seconds = float(text[:-1] if unit else text) * (unit or 1)
        except ValueError:
            self.fail(f"{value!r} is not a duration (e.g. 90, 45s, 30m, 12h, 7d)", param, ctx)
        if seconds < 0:
            self.fail(f"{value!r} is negative", param, ctx)
        return seconds


@triggers.command()
@click.option(
    "--older-than",
    type=Duration(),
    required=True,
    help="Time since a session's last change: 90 (seconds), 30m, 12h, 7d.",
)
@click.option("--resolved-only", is_flag=True, help="Only sessions whose instances are all resolved.")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
@_refusals
def purge(ctx: click.Context, older_than: float, resolved_only: bool, dry_run: bool, as_json: bool) -> None:
    """Delete the sessions with nothing scheduled or running that have not
    changed for --older-than (retention for storages that do not expire:
    run it from cron or celery beat)."""
    purged = _extension(ctx).purge(older_than, resolved_only=resolved_only, dry_run=dry_run)
    if as_json:
        _echo_json(purged)
        return
    for uid in purged:
        click.echo(escape_text(uid))
    click.echo(f"{'would purge' if dry_run else 'purged'} {len(purged)} session(s)")


@triggers.command()
@click.argument("sessions", nargs=-1, required=True)
@click.pass_context
@_refusals
def delete(ctx: click.Context, sessions: tuple[str, ...]) -> None:
    """Delete the named sessions and everything in them."""
    ext = _extension(ctx)
    for uid in sessions:
        _existing_session(ctx, uid)
    for uid in sessions:
        ext.storage.delete_session(uid)
        click.echo(f"deleted {escape_text(uid)}")


@triggers.command()
@click.argument("session", required=False)
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@click.pass_context
@_refusals
def graph(ctx: click.Context, session: str | None, fmt: str) -> None:
    """The workflow as a graph; with SESSION, tasks filled with their status
    colour, fired triggers filled and unfired ones dashed, and a legend (a
    task with stored instances that this app has no config for is drawn
    as a task, with no edges of its own)."""
    import dataclasses

    from ..core.analysis import workflow
    from ..session.summary import task_statuses
    from .graph import to_dot, to_mermaid

    ext = _extension(ctx)
    fired: set[str] | None = None
    unknown: set[str] = set()
    if session is None:
        configs, statuses = ext.configs, None
    else:
        manager = _existing_session(ctx, session)
        configs, snapshot = manager.overview()
        fired = {name for name, record in snapshot.triggers.items() if record.count > 0}
        instances = list(manager.instances.values())
        unknown = {i.task for i in instances} - set(configs)
        statuses = task_statuses([*configs, *unknown], instances)
    flow = workflow(configs)
    flow = dataclasses.replace(
        flow, tasks=sorted([*flow.tasks, *unknown]), external=[t for t in flow.external if t not in unknown]
    )
    click.echo((to_dot if fmt == "dot" else to_mermaid)(flow, statuses, fired), nl=False)


@triggers.command()
@click.pass_context
@_refusals
def validate(ctx: click.Context) -> None:
    """Check the app's trigger tasks; exit 1 when something is wrong."""
    from ..core.analysis import find_problems, workflow

    ext = _extension(ctx)
    configs = ext.configs
    problems = find_problems(configs, registered=list(ext.app.tasks.keys()))
    click.echo(f"{len(configs)} trigger task(s); external triggers the app must fire:")
    for trigger in workflow(configs).external:
        click.echo(f"  {trigger}")
    for task_name, config in sorted(configs.items()):
        if config.extras:
            click.echo(f"custom directives kept on {task_name}: {', '.join(sorted(config.extras))}")
    for problem in problems:
        click.echo(f"{problem.level}: {problem.task}: {problem.message}", err=problem.level == "error")
    errors = [p for p in problems if p.level == "error"]
    if errors:
        raise click.exceptions.Exit(1)
    click.echo("ok")
