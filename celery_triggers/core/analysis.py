"""Static analysis of a configuration: the workflow graph and its problems.

Pure functions over task configs (no Celery, no storage), used by the
``celery triggers graph`` and ``celery triggers validate`` commands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .config import TaskConfig

__all__ = ["Edge", "Problem", "Workflow", "find_problems", "workflow"]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    #: "after", "every" (andEvery) or "unless".
    kind: str


@dataclass
class Workflow:
    tasks: list[str]
    #: Triggers no task produces: the application must fire them.
    external: list[str]
    edges: list[Edge] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    task: str
    message: str
    #: "error" makes ``validate`` fail; "warning" does not.
    level: str = "error"


def workflow(configs: Mapping[str, TaskConfig]) -> Workflow:
    """External triggers -> tasks -> cascades, plus dashed ``unless`` edges."""
    edges: list[Edge] = []
    mentioned: set[str] = set()
    for name, config in sorted(configs.items()):
        for trigger in config.after:
            edges.append(Edge(trigger, name, "after"))
        if config.and_every is not None:
            edges.append(Edge(config.and_every, name, "every"))
        for trigger in config.unless:
            edges.append(Edge(trigger, name, "unless"))
        mentioned |= config.watched
    external = sorted(mentioned - set(configs))
    return Workflow(tasks=sorted(configs), external=external, edges=edges)


def _cycles(configs: Mapping[str, TaskConfig]) -> list[list[str]]:
    """Strongly connected groups of tasks that wait for each other."""
    graph = {name: sorted(t for t in c.required if t in configs) for name, c in configs.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:  # Tarjan's algorithm
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1 or node in graph[node]:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def find_problems(configs: Mapping[str, TaskConfig], registered: Iterable[str] | None = None) -> list[Problem]:
    """What makes a configuration fail or never run.

    ``registered``: the Celery task names the app knows (None: skip that check).
    """
    problems: list[Problem] = []
    known = set(registered) if registered is not None else None
    for name, config in sorted(configs.items()):
        if known is not None and config.run not in known:
            problems.append(Problem(name, f"runs {config.run!r}, which is not a registered Celery task"))
        if config.unless and set(config.unless) <= config.required:
            problems.append(
                Problem(
                    name, f"can never run: its unless triggers {sorted(config.unless)} are all among its after triggers"
                )
            )
        for trigger in sorted(config.watched):
            if trigger.startswith("t_") and trigger not in configs:
                problems.append(
                    Problem(
                        name,
                        f"waits for {trigger!r}, which looks like a trigger task but none is configured",
                        "warning",
                    )
                )
    cyclic = _cycles(configs)
    in_cycle = {task for group in cyclic for task in group}
    for group in cyclic:
        problems.append(
            Problem(group[0], "cascade cycle: " + " -> ".join([*group, group[0]]) + " (none of them can run)")
        )
    # Tasks waiting (transitively) on a cycle can never run either.
    blocked = set(in_cycle)
    changed = True
    while changed:
        changed = False
        for name, config in configs.items():
            if name not in blocked and config.required & blocked:
                blocked.add(name)
                changed = True
    for name in sorted(blocked - in_cycle):
        problems.append(Problem(name, "can never run: it waits for a task in a cascade cycle"))
    return problems
