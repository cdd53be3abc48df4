"""What the ``celery triggers`` commands share: errors as one line and exit
code 1 (:func:`refusals`), the app's extension with its project loaded
(:func:`extension`), a session that must exist, JSON options and output,
and the options of the commands that act on many sessions
(:func:`sessions_option`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..core.data import display_json
from ..core.errors import TriggersError
from ..storage import mask_url

__all__ = [
    "chosen",
    "echo_json",
    "existing_session",
    "extension",
    "json_object",
    "kwargs_option",
    "refusals",
    "sessions_option",
]

F = TypeVar("F", bound=Callable[..., Any])
#: Set in the click context once the project was loaded (once per command).
LOADED = "celery_triggers.project_loaded"


def refusals(fn: F) -> F:
    """Turn our errors into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TriggersError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]  # same signature as fn


def extension(ctx: click.Context) -> Any:
    """The extension of the app Celery loaded, its project loaded first
    as a worker loads it (task modules, Django: see ``cli/project.py``)."""
    app = getattr(ctx.obj, "app", None)
    if app is None:
        raise click.UsageError("no Celery app: run as `celery -A proj triggers ...`")
    if not ctx.meta.get(LOADED):
        from .project import check_storage, load_project

        load_project(app)
        ext = _installed(app)
        check_storage(ext.storage_url)
        ctx.meta[LOADED] = True
    return _installed(app)


def _installed(app: Any) -> Any:
    """The app's extension; an app that never called ``Triggers(app)`` is
    refused (its commands would read a storage its tasks never use)."""
    from ..app.extension import Triggers
    from ..session.host import installed

    if installed(app) is None:
        raise click.ClickException(
            f"Celery app {app.main!r} has no celery-triggers extension: call Triggers(app) in the module "
            "that creates it (the one `celery -A` names), then run the command again"
        )
    return Triggers(app)


def json_object(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint=what) from None


def kwargs_option(value: str | None, what: str) -> dict[str, Any] | None:
    data = json_object(value, what)
    if data is not None and not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint=what)
    return data


def existing_session(ctx: click.Context, uid: str) -> Any:
    ext = extension(ctx)
    manager = ext.session(uid)
    if not ext.storage.session_exists(uid):
        raise click.ClickException(f"no session {uid!r} in storage {mask_url(ext.storage_url)}")
    return manager


def echo_json(data: Any) -> None:
    click.echo(display_json(data, indent=2))


def sessions_option(fn: F) -> F:
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


def chosen(sessions: tuple[str, ...], all_sessions: bool) -> tuple[str, ...] | None:
    if bool(sessions) == all_sessions:
        raise click.UsageError("name SESSION(s) or pass --all")
    return None if all_sessions else sessions
