"""The workflow as Mermaid or Graphviz DOT text."""

from __future__ import annotations

from collections.abc import Mapping

from ..analysis import Workflow

__all__ = ["STATUS_COLOURS", "to_dot", "to_mermaid"]

#: Fill colour per status (also used for the aggregate status of a task).
STATUS_COLOURS = {
    "finished": "#b7e4c7",
    "failed": "#f4a6a6",
    "running": "#ffe08a",
    "scheduled": "#a8d8f0",
    "unstarted": "#e9ecef",
    "abandoned": "#d3c4e3",
    "replayed": "#d3c4e3",
    "skipped": "#d3c4e3",
}


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(flow: Workflow, statuses: Mapping[str, str] | None = None) -> str:
    lines = ["digraph workflow {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for trigger in flow.external:
        lines.append(f"  {_dot_id(trigger)} [shape=ellipse];")
    for task in flow.tasks:
        attrs = ["shape=box"]
        status = (statuses or {}).get(task)
        if status:
            attrs += ["style=filled", f'fillcolor="{STATUS_COLOURS.get(status, "#ffffff")}"', f'xlabel="{status}"']
        lines.append(f"  {_dot_id(task)} [{', '.join(attrs)}];")
    for edge in flow.edges:
        style = {"after": "", "every": ' [label="every"]', "unless": ' [style=dashed, label="unless"]'}[edge.kind]
        lines.append(f"  {_dot_id(edge.source)} -> {_dot_id(edge.target)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_label(name: str) -> str:
    return '"' + name.replace('"', "#quot;") + '"'


def to_mermaid(flow: Workflow, statuses: Mapping[str, str] | None = None) -> str:
    ids = {name: f"n{i}" for i, name in enumerate([*flow.external, *flow.tasks])}
    lines = ["flowchart LR"]
    for trigger in flow.external:
        lines.append(f"  {ids[trigger]}([{_mermaid_label(trigger)}])")
    for task in flow.tasks:
        lines.append(f"  {ids[task]}[{_mermaid_label(task)}]")
    for edge in flow.edges:
        arrow = {"after": "-->", "every": "-->|every|", "unless": "-.->|unless|"}[edge.kind]
        lines.append(f"  {ids[edge.source]} {arrow} {ids[edge.target]}")
    used = sorted({s for t, s in (statuses or {}).items() if t in ids})
    for status in used:
        lines.append(f"  classDef {status} fill:{STATUS_COLOURS.get(status, '#ffffff')}")
    for task, status in sorted((statuses or {}).items()):
        if task in ids:
            lines.append(f"  class {ids[task]} {status}")
    return "\n".join(lines) + "\n"
