"""The workflow as inline SVG for the admin: no Graphviz, no JavaScript.

Columns by depth (external triggers first, then each task one column after
the latest thing it waits for), boxes filled with the task's status colour,
fired triggers filled dark and unfired ones dashed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from html import escape

from ...core.analysis import Workflow
from ...session.summary import FIRED_COLOUR, STATUS_COLOURS

__all__ = ["to_svg"]

_W, _H, _GAP_X, _GAP_Y, _PAD = 170, 34, 60, 18, 12


def _depths(flow: Workflow) -> dict[str, int]:
    depth = dict.fromkeys(flow.external, 0)
    tasks = set(flow.tasks)
    for _ in range(len(tasks) + 1):  # longest path, bounded (cycles are reported by validate)
        changed = False
        for edge in flow.edges:
            if edge.target in tasks:
                want = depth.get(edge.source, 0) + 1
                if depth.get(edge.target, 0) < want and want <= len(tasks):
                    depth[edge.target] = want
                    changed = True
        if not changed:
            break
    for task in flow.tasks:
        depth.setdefault(task, 1)
    return depth


def to_svg(flow: Workflow, statuses: Mapping[str, str], fired: Collection[str]) -> str:
    depth = _depths(flow)
    columns: dict[int, list[str]] = {}
    for name in [*flow.external, *flow.tasks]:
        columns.setdefault(depth[name], []).append(name)
    where: dict[str, tuple[int, int]] = {}
    for col, names in columns.items():
        for row, name in enumerate(names):
            where[name] = (_PAD + col * (_W + _GAP_X), _PAD + row * (_H + _GAP_Y))
    width = _PAD * 2 + (max(columns, default=0) + 1) * (_W + _GAP_X) - _GAP_X
    height = _PAD * 2 + max((len(n) for n in columns.values()), default=1) * (_H + _GAP_Y) - _GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ct-graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="ct-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for edge in flow.edges:
        if edge.source not in where or edge.target not in where:
            continue
        (x1, y1), (x2, y2) = where[edge.source], where[edge.target]
        dash = ' stroke-dasharray="5,4"' if edge.kind == "unless" else ""
        parts.append(
            f'<line x1="{x1 + _W}" y1="{y1 + _H // 2}" x2="{x2}" y2="{y2 + _H // 2}" stroke="#555"{dash} '
            f'marker-end="url(#ct-arrow)"><title>{escape(edge.kind)}</title></line>'
        )
    for name, (x, y) in where.items():
        label = escape(name if len(name) <= 24 else name[:23] + "…")
        if name in flow.external:
            fill, text, dash = (
                (FIRED_COLOUR, "#fff", "") if name in fired else ("#fff", "#222", ' stroke-dasharray="4,3"')
            )
            shape = f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="17" fill="{fill}" stroke="#555"{dash}/>'
            state = "fired" if name in fired else "not fired"
        else:
            status = statuses.get(name, "")
            fill, text = STATUS_COLOURS.get(status, "#fff"), "#222"
            shape = f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="3" fill="{fill}" stroke="#555"/>'
            state = status or "no instance"
        parts.append(
            f'<g class="ct-node" data-name="{escape(name)}" data-state="{escape(state)}">{shape}'
            f'<text x="{x + _W // 2}" y="{y + _H // 2 + 4}" text-anchor="middle" fill="{text}">{label}</text>'
            f"<title>{escape(name)}: {escape(state)}</title></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
