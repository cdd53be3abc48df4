"""The workflow as Mermaid or Graphviz DOT text."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ..core.analysis import Workflow
from ..core.data import escape_text
from ..session.summary import FIRED_COLOUR, STATUS_COLOURS

__all__ = ["to_dot", "to_mermaid"]


def _dot_id(name: str) -> str:
    """A quoted DOT id: the name escaped first (a stored name may hold a
    newline or a terminal escape), then its backslashes and quotes as DOT
    wants them (so ``\\n`` shows as written, not as a line break)."""
    return '"' + escape_text(name).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(flow: Workflow, statuses: Mapping[str, str] | None = None, fired: Collection[str] | None = None) -> str:
    """DOT text; with ``statuses`` (task -> status) tasks are filled with
    their status colour and a legend names the colours; with ``fired``
    (a session's fired triggers) fired external triggers are filled and the
    others dashed."""
    lines = ["digraph workflow {", "  rankdir=LR;", '  node [fontname="Helvetica"];', '  edge [fontname="Helvetica"];']
    for trigger in flow.external:
        if fired is None:
            attrs = "shape=ellipse"
        elif trigger in fired:
            attrs = f'shape=ellipse, style=filled, fillcolor="{FIRED_COLOUR}", fontcolor=white'
        else:
            attrs = "shape=ellipse, style=dashed"
        lines.append(f"  {_dot_id(trigger)} [{attrs}];")
    for task in flow.tasks:
        box = ["shape=box"]
        status = (statuses or {}).get(task)
        if status:
            box += ["style=filled", f'fillcolor="{STATUS_COLOURS.get(status, "#ffffff")}"']
        lines.append(f"  {_dot_id(task)} [{', '.join(box)}];")
    for edge in flow.edges:
        style = {"after": "", "every": ' [label="every"]', "unless": ' [style=dashed, label="unless"]'}[edge.kind]
        lines.append(f"  {_dot_id(edge.source)} -> {_dot_id(edge.target)}{style};")
    if statuses is not None or fired is not None:
        lines += _dot_legend(sorted(set((statuses or {}).values())), fired is not None)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_legend(used: list[str], triggers: bool) -> list[str]:
    lines = ["  subgraph cluster_legend {", '    label="legend"; fontname="Helvetica"; style=rounded;']
    for status in used:
        colour = STATUS_COLOURS.get(status, "#ffffff")
        lines.append(f'    "legend: {status}" [label="{status}", shape=box, style=filled, fillcolor="{colour}"];')
    if triggers:
        lines.append(
            f'    "legend: fired" [label="fired trigger", shape=ellipse, style=filled, fillcolor="{FIRED_COLOUR}", '
            "fontcolor=white];"
        )
        lines.append('    "legend: not fired" [label="not fired yet", shape=ellipse, style=dashed];')
    names = [f'"legend: {status}"' for status in used] + (
        ['"legend: fired"', '"legend: not fired"'] if triggers else []
    )
    if len(names) > 1:  # one row, left to right
        lines.append(f"    {' -> '.join(names)} [style=invis];")
    lines.append("  }")
    return lines


def _mermaid_label(name: str) -> str:
    """A quoted Mermaid label, the name escaped (no line of its own)."""
    return '"' + escape_text(name).replace('"', "#quot;") + '"'


def to_mermaid(flow: Workflow, statuses: Mapping[str, str] | None = None, fired: Collection[str] | None = None) -> str:
    """Mermaid text, coloured as :func:`to_dot` (the legend is a subgraph)."""
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
    if statuses is not None or fired is not None:
        lines.append('  subgraph legend["legend"]')
        lines += [f"    legend_{status}[{status}]" for status in used]
        if fired is not None:
            lines += ["    legend_fired([fired trigger])", "    legend_unfired([not fired yet])"]
        lines.append("  end")
    for status in used:
        lines.append(f"  classDef {status} fill:{STATUS_COLOURS.get(status, '#ffffff')}")
    for task, status in sorted((statuses or {}).items()):
        if task in ids:
            lines.append(f"  class {ids[task]} {status}")
    for status in used:
        lines.append(f"  class legend_{status} {status}")
    if fired is not None:
        lines.append(f"  classDef fired fill:{FIRED_COLOUR},color:#ffffff")
        lines.append("  classDef unfired stroke-dasharray: 5 5")
        for trigger in flow.external:
            lines.append(f"  class {ids[trigger]} {'fired' if trigger in fired else 'unfired'}")
        lines += ["  class legend_fired fired", "  class legend_unfired unfired"]
    return "\n".join(lines) + "\n"
