"""Two small inline SVG charts for the incident report, drawn in Python: no JavaScript, no libraries.

    activity_chart(lanes, points, markers)   events over time, one lane per category, with
                                             vertical lines for milestones (containment …)
    tree_chart(nodes)                         a tree drawn as an indented outline with elbow links

Both return `markupsafe.Markup`: every piece of text placed in the drawing is escaped here, so a
caller can put the result into an autoescaped template as is. The drawings scale with the page
(`viewBox`, `width="100%"`) and carry a `<title>` and `<desc>` for screen readers; each point has
its own `<title>`, which browsers show as a tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
#: Tick steps an axis may use, smallest first.
_STEPS = tuple(timedelta(seconds=s) for s in (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
                                                10800, 21600, 43200, 86400, 172800, 604800))


@dataclass(frozen=True)
class Lane:
    key: str
    label: str
    color: str


@dataclass(frozen=True)
class Point:
    lane: str
    at: datetime
    title: str
    failed: bool = False


@dataclass(frozen=True)
class Marker:
    at: datetime
    label: str
    color: str
    dashed: bool = False


@dataclass(frozen=True)
class TreeNode:
    id: str
    parent: str | None
    title: str
    subtitle: str = ""
    edge_label: str = ""
    color: str = "#334155"
    dashed: bool = False


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _tick_step(span: timedelta, wanted: int = 6) -> timedelta:
    return next((step for step in _STEPS if span / step <= wanted), _STEPS[-1])


def _ticks(start: datetime, end: datetime) -> tuple[list[datetime], str]:
    step = _tick_step(end - start)
    epoch = datetime(2000, 1, 1, tzinfo=start.tzinfo)
    first = epoch + step * -(-(start - epoch) // step)  # the first multiple of step at or after start
    ticks = []
    moment = first
    while moment <= end:
        ticks.append(moment)
        moment += step
    if (end - start) >= timedelta(days=2):
        fmt = "%m-%d %H:%M"
    elif step < timedelta(minutes=1):
        fmt = "%H:%M:%S"
    else:
        fmt = "%H:%M"
    return ticks, fmt


def activity_chart(lanes: Sequence[Lane], points: Sequence[Point], markers: Sequence[Marker] = (), *,
                   title: str = "Attacker activity over time", width: int = 880) -> Markup:
    """Events as dots on one lane per category, against time; markers as labelled vertical lines."""
    left, right, top, lane_h, bottom = 150, 56, 34, 30, 58
    height = top + lane_h * len(lanes) + bottom
    plot_w = width - left - right
    moments = [p.at for p in points] + [m.at for m in markers]
    if moments:
        lo, hi = min(moments), max(moments)
    else:
        lo = hi = datetime(2000, 1, 1)
    span = max(hi - lo, timedelta(minutes=1))
    lo, hi = lo - span * 0.04, hi + span * 0.04

    def x(moment: datetime) -> float:
        return left + plot_w * ((moment - lo) / (hi - lo))

    lane_y = {lane.key: top + lane_h * i + lane_h / 2 for i, lane in enumerate(lanes)}
    counts = {lane.key: sum(1 for p in points if p.lane == lane.key) for lane in lanes}
    axis_y = top + lane_h * len(lanes)
    desc = ", ".join(f"{lane.label}: {counts[lane.key]}" for lane in lanes)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
           f'role="img" aria-labelledby="activity-title activity-desc" style="{FONT};max-width:{width}px">',
           f'<title id="activity-title">{escape(title)}</title>',
           f'<desc id="activity-desc">Events per category: {escape(desc)}.</desc>',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    for i, lane in enumerate(lanes):
        y = lane_y[lane.key]
        if i % 2 == 0:
            out.append(f'<rect x="{left}" y="{_num(y - lane_h / 2)}" width="{plot_w}" height="{lane_h}" '
                       'fill="#f8fafc"/>')
        out.append(f'<text x="{left - 10}" y="{_num(y + 4)}" text-anchor="end" font-size="12" fill="#1e293b">'
                   f'{escape(lane.label)}</text>')
        out.append(f'<text x="{width - right + 8}" y="{_num(y + 4)}" font-size="11" fill="#475569">'
                   f'{counts[lane.key]}</text>')
    ticks, fmt = _ticks(lo, hi)
    for tick in ticks:
        tx = _num(x(tick))
        out.append(f'<line x1="{tx}" y1="{top}" x2="{tx}" y2="{axis_y}" stroke="#e2e8f0"/>')
        out.append(f'<text x="{tx}" y="{axis_y + 16}" text-anchor="middle" font-size="11" fill="#475569">'
                   f'{escape(tick.strftime(fmt))}</text>')
    out.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" stroke="#64748b"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{axis_y}" stroke="#64748b"/>')
    day = lo.strftime("%Y-%m-%d") if hi.date() == lo.date() else f"{lo:%Y-%m-%d} – {hi:%Y-%m-%d}"
    out.append(f'<text x="{_num(left + plot_w / 2)}" y="{axis_y + 40}" text-anchor="middle" font-size="12" '
               f'fill="#1e293b">time (UTC), {escape(day)}</text>')
    out.append(f'<text x="14" y="{_num(top + lane_h * len(lanes) / 2)}" text-anchor="middle" font-size="12" '
               f'fill="#1e293b" transform="rotate(-90 14 {_num(top + lane_h * len(lanes) / 2)})">category</text>')
    out.append(f'<text x="{width - right + 8}" y="{top - 12}" font-size="11" fill="#475569">events</text>')
    colors = {lane.key: lane.color for lane in lanes}
    for point in points:
        color = colors.get(point.lane, "#64748b")
        fill = "#ffffff" if point.failed else color
        out.append(f'<circle cx="{_num(x(point.at))}" cy="{_num(lane_y.get(point.lane, axis_y))}" r="5" '
                   f'fill="{fill}" fill-opacity="0.85" stroke="{color}" stroke-width="1.5">'
                   f'<title>{escape(point.title)}</title></circle>')
    for number, marker in enumerate(markers):
        mx = _num(x(marker.at))
        dash = ' stroke-dasharray="5 3"' if marker.dashed else ""
        out.append(f'<line x1="{mx}" y1="{top - 6}" x2="{mx}" y2="{axis_y}" stroke="{marker.color}" '
                   f'stroke-width="2"{dash}/>')
        anchor = "end" if x(marker.at) > left + plot_w * 0.8 else "start"
        dx = -4 if anchor == "end" else 4
        out.append(f'<text x="{_num(x(marker.at) + dx)}" y="{top - 10 - 11 * (number % 2)}" '
                   f'text-anchor="{anchor}" font-size="11" font-weight="600" fill="{marker.color}">'
                   f'{escape(marker.label)} {escape(marker.at.strftime("%H:%M:%S"))}</text>')
    out.append("</svg>")
    return Markup("\n".join(out))  # noqa: S704 - every text above went through escape()


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


def outline(nodes: Sequence[TreeNode]) -> list[tuple[TreeNode, int]]:
    """Nodes in depth-first order with their depth; orphans (parent unknown) hang off the roots."""
    ids = {node.id for node in nodes}
    children: dict[str | None, list[TreeNode]] = {}
    for node in nodes:
        parent = node.parent if node.parent in ids and node.parent != node.id else None
        children.setdefault(parent, []).append(node)
    ordered: list[tuple[TreeNode, int]] = []
    seen: set[str] = set()

    def walk(parent: str | None, depth: int) -> None:
        for child in children.get(parent, []):
            if child.id not in seen:
                seen.add(child.id)
                ordered.append((child, depth))
                walk(child.id, depth + 1)

    walk(None, 0)
    ordered.extend((node, 0) for node in nodes if node.id not in seen)  # a cycle: show, do not loop
    return ordered


def tree_chart(nodes: Sequence[TreeNode], *, title: str = "Credential graph", width: int = 880) -> Markup:
    """An outline tree: each node a box, indented under its parent, linked by a labelled elbow."""
    rows = outline(nodes)
    indent, row_h, box_h, top = 150, 58, 44, 12
    max_depth = max((depth for _, depth in rows), default=0)
    box_w = max(300, width - indent * max_depth - 20)
    height = top + row_h * len(rows) + 4
    drawn_w = indent * max_depth + box_w + 12
    fit = int((box_w - 24) / 6.4)  # characters that fit a box at 11–12.5 px
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {drawn_w} {height}" width="100%" '
           f'role="img" aria-labelledby="tree-title" style="{FONT};max-width:{drawn_w}px">',
           f'<title id="tree-title">{escape(title)}</title>',
           f'<rect x="0" y="0" width="{drawn_w}" height="{height}" fill="#ffffff"/>']
    where: dict[str, tuple[float, float]] = {}
    for row, (node, depth) in enumerate(rows):
        bx, by = 6 + indent * depth, top + row * row_h
        where[node.id] = (bx, by)
        if node.parent in where:
            px, py = where[node.parent]
            ex = px + 24
            dash = ' stroke-dasharray="5 3"' if node.dashed else ""
            out.append(f'<path d="M{_num(ex)} {_num(py + box_h)} V{_num(by + box_h / 2)} H{_num(bx)}" fill="none" '
                       f'stroke="#94a3b8" stroke-width="1.5"{dash}/>')
            if node.edge_label:
                out.append(f'<text x="{_num(ex + 6)}" y="{_num(by + box_h / 2 - 5)}" font-size="10.5" '
                           f'fill="#475569">{escape(node.edge_label)}</text>')
        out.append(f'<rect x="{bx}" y="{by}" width="{box_w}" height="{box_h}" rx="6" fill="#ffffff" '
                   f'stroke="{node.color}" stroke-width="1.5"/>')
        out.append(f'<rect x="{bx}" y="{by}" width="6" height="{box_h}" rx="2" fill="{node.color}"/>')
        out.append(f'<text x="{bx + 14}" y="{by + 18}" font-size="12.5" font-weight="600" fill="#0f172a" '
                   f'font-family="ui-monospace,Menlo,Consolas,monospace">{escape(_fit(node.title, fit))}</text>')
        out.append(f'<text x="{bx + 14}" y="{by + 35}" font-size="11" fill="#475569">'
                   f'{escape(_fit(node.subtitle, fit))}</text>')
    out.append("</svg>")
    return Markup("\n".join(out))  # noqa: S704 - every text above went through escape()
