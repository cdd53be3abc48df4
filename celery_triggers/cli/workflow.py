"""The commands about the workflow itself: ``graph`` (Mermaid or DOT, a
session's statuses drawn on it) and ``validate`` (the static checks of the
app's trigger tasks)."""

from __future__ import annotations

import click

from .common import existing_session, extension, refusals

__all__ = ["graph", "validate"]


@click.command()
@click.argument("session", required=False)
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@click.pass_context
@refusals
def graph(ctx: click.Context, session: str | None, fmt: str) -> None:
    """The workflow as a graph; with SESSION, tasks filled with their status
    colour, fired triggers filled and unfired ones dashed, and a legend (a
    task with stored instances that this app has no config for is drawn
    as a task, with no edges of its own)."""
    import dataclasses

    from ..core.analysis import workflow
    from ..session.summary import task_statuses
    from .graph import to_dot, to_mermaid

    ext = extension(ctx)
    fired: set[str] | None = None
    unknown: set[str] = set()
    if session is None:
        configs, statuses = ext.configs, None
    else:
        manager = existing_session(ctx, session)
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


@click.command()
@click.pass_context
@refusals
def validate(ctx: click.Context) -> None:
    """Check the app's trigger tasks; exit 1 when something is wrong."""
    from ..core.analysis import find_problems, workflow

    ext = extension(ctx)
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
