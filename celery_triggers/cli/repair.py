"""The commands that act on a session's instances, as an operator unblocks
or mends a session: ``fire`` a trigger by hand, ``replay`` or ``skip`` a
failed instance, ``redispatch`` or ``recover`` what a lost message, a crash
or an outage left ``scheduled`` or ``running``."""

from __future__ import annotations

from typing import Any

import click

from ..core.data import display_json
from ..session.commit import ran_in_caller
from .common import (
    chosen,
    echo_json,
    existing_session,
    extension,
    json_object,
    kwargs_option,
    refusals,
    sessions_option,
)

__all__ = ["fire", "recover", "redispatch", "replay", "skip"]


@click.command()
@click.argument("session")
@click.argument("trigger")
@click.option("--kwargs", "kwargs_json", help="Trigger kwargs as a JSON object.")
@click.pass_context
@refusals
def fire(ctx: click.Context, session: str, trigger: str, kwargs_json: str | None) -> None:
    """Fire TRIGGER in SESSION."""
    kwargs = kwargs_option(kwargs_json, "--kwargs")
    scheduled = extension(ctx).session(session).fire(trigger, kwargs)
    names = ", ".join(i.name for i in scheduled) or "nothing"
    click.echo(f"fired {trigger} in {session}: scheduled {names}")


@click.command()
@click.argument("session")
@click.argument("instance")
@click.option("--kwargs", "kwargs_json", help="Kwargs of the triggers it names, as JSON (the others are kept).")
@click.option("--replace-kwargs", "replace_json", help="All of the clone's kwargs (trigger -> kwargs), as JSON.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed and with which kwargs; change nothing.")
@click.pass_context
@refusals
def replay(
    ctx: click.Context, session: str, instance: str, kwargs_json: str | None, replace_json: str | None, dry_run: bool
) -> None:
    """Replay a failed INSTANCE of SESSION (a clone runs)."""
    from ..core.engine import replay_kwargs

    if kwargs_json is not None and replace_json is not None:
        raise click.UsageError("pass --kwargs (per-trigger) or --replace-kwargs (all), not both")
    update = kwargs_option(kwargs_json, "--kwargs")
    replacement = kwargs_option(replace_json, "--replace-kwargs")
    manager = existing_session(ctx, session)
    if dry_run:
        failed = manager.instance(instance)
        if failed.status.value != "failed":
            raise click.ClickException(f"{instance} is {failed.status.value}; only a failed instance can be replayed")
        kwargs = display_json(replay_kwargs(failed, replacement, update))
        click.echo(
            f"would replay {instance} ({failed.status.value}): a new instance of {failed.task} would run with "
            f"kwargs {kwargs}; nothing was changed (--dry-run)"
        )
        return
    clone = manager.replay_failed_instance(instance, replacement, kwargs_update=update)
    if ran_in_caller(manager.extension):  # the eager runner ran it already: say how it ended
        clone = manager.instance(clone.name)
    click.echo(f"replayed {instance} as {clone.name} ({clone.status.value})")


@click.command()
@click.argument("session")
@click.argument("instance")
@click.option("--cascade", is_flag=True, help="Fire the task's name as if it had finished.")
@click.option("--result", "result_json", help="The simulated result, as JSON.")
@click.pass_context
@refusals
def skip(ctx: click.Context, session: str, instance: str, cascade: bool, result_json: str | None) -> None:
    """Mark a failed INSTANCE of SESSION skipped."""
    result = json_object(result_json, "--result")
    skipped = existing_session(ctx, session).skip_failed_instance(instance, cascade=cascade, result=result)
    click.echo(f"skipped {skipped.name}" + (" (cascaded)" if cascade else ""))


def _report(actions: list[Any], as_json: bool, dry_run: bool, what: tuple[str, str]) -> None:
    """One line per instance (what was done, or skipped and why), then a count."""
    if as_json:
        echo_json([a.to_dict() for a in actions])
        return
    for action in actions:
        click.echo(str(action))
    done = sum(a.action != "skipped" for a in actions)
    verb = f"would {what[0]}" if dry_run else what[1]
    click.echo(f"{verb} {done} instance(s), skipped {len(actions) - done}")


@click.command()
@sessions_option
@click.pass_context
@refusals
def redispatch(
    ctx: click.Context, sessions: tuple[str, ...], all_sessions: bool, older_than: float, dry_run: bool, as_json: bool
) -> None:
    """Re-send instances left `scheduled` (their message never reached a
    worker), each with a new task id: a late original runs nothing."""
    actions = extension(ctx).redispatch(chosen(sessions, all_sessions), older_than=older_than, dry_run=dry_run)
    _report(actions, as_json, dry_run, ("re-send", "re-sent"))


@click.command()
@sessions_option
@click.pass_context
@refusals
def recover(
    ctx: click.Context, sessions: tuple[str, ...], all_sessions: bool, older_than: float, dry_run: bool, as_json: bool
) -> None:
    """Resolve instances a crash or an outage left `scheduled` or `running`:
    from Celery's result backend when it knows the outcome, else re-send a
    lost message (new task id) or mark a dead run failed (WorkerLost)."""
    actions = extension(ctx).recover(chosen(sessions, all_sessions), older_than=older_than, dry_run=dry_run)
    _report(actions, as_json, dry_run, ("resolve", "resolved"))
