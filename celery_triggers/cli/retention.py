"""The commands that delete: ``purge`` (retention, for storages that do not
expire: sessions idle for a while) and ``delete`` (named sessions)."""

from __future__ import annotations

from typing import Any

import click

from ..core.data import escape_text
from .common import echo_json, existing_session, extension, refusals

__all__ = ["Duration", "delete", "purge"]


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


@click.command()
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
@refusals
def purge(ctx: click.Context, older_than: float, resolved_only: bool, dry_run: bool, as_json: bool) -> None:
    """Delete the sessions with nothing scheduled or running that have not
    changed for --older-than (retention for storages that do not expire:
    run it from cron or celery beat)."""
    purged = extension(ctx).purge(older_than, resolved_only=resolved_only, dry_run=dry_run)
    if as_json:
        echo_json(purged)
        return
    for uid in purged:
        click.echo(escape_text(uid))
    click.echo(f"{'would purge' if dry_run else 'purged'} {len(purged)} session(s)")


@click.command()
@click.argument("sessions", nargs=-1, required=True)
@click.pass_context
@refusals
def delete(ctx: click.Context, sessions: tuple[str, ...]) -> None:
    """Delete the named sessions and everything in them."""
    ext = extension(ctx)
    for uid in sessions:
        existing_session(ctx, uid)
    for uid in sessions:
        ext.storage.delete_session(uid)
        click.echo(f"deleted {escape_text(uid)}")
