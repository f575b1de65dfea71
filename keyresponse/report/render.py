"""The renderers: the report as Markdown, HTML and JSON, and the files `write_report` writes.

The templates are `reports/incident_report.{md,html}.j2` with partials `reports/_*.j2`. Both
environments use `StrictUndefined`. HTML is autoescaped. Markdown cannot be autoescaped by
Jinja, so its environment has a `finalize` that passes every `{{ … }}` output through
`keyresponse.markdown.text`, the one escaping function (the Prefect UI renders images, links and raw
HTML inside Markdown). Only `Markdown` values built by keyresponse.markdown (code spans and blocks)
and the chart's data URI pass through unchanged. An attacker's user agent or object key therefore
shows as text in both formats.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from keyresponse import markdown
from keyresponse.errors import InputError
from keyresponse.files import data_folder
from keyresponse.incident import Incident
from keyresponse.markdown import Markdown
from keyresponse.report.formatting import compact_json, human_duration, short_arn, when
from keyresponse.report.model import ReportContext, build_context

#: Where the templates live: the top-level `reports/` package (package data in a wheel).

REPORTS_DIR = data_folder("reports", pattern="incident_report.*.j2")
REPORT_FILES = ("report.md", "report.html", "incident.json")

def _finalize_markdown(value: Any) -> Any:
    if isinstance(value, Markdown | Markup):  # built by keyresponse.markdown, or the chart's data URI
        return value
    return "—" if value is None else markdown.text(value)


def _finalize_html(value: Any) -> Any:
    return "—" if value is None else value


def _nest(depth: int) -> Markdown:
    """Two spaces per level of a nested Markdown list."""
    return Markdown("  " * int(depth))


def _common_filters(env: Environment) -> None:
    env.filters.update(when=when, duration=human_duration, short_arn=short_arn, compact_json=compact_json)
    env.tests["mapping"] = lambda value: isinstance(value, Mapping)
    env.tests["scalar_list"] = lambda value: isinstance(value, list) and all(
        not isinstance(v, Mapping | list) for v in value)


@lru_cache(maxsize=2)
def environment(kind: str) -> Environment:
    """The Jinja environment for `md` or `html` templates (StrictUndefined; escaping as the docstring says)."""
    loader = FileSystemLoader(REPORTS_DIR)
    if kind == "html":
        env = Environment(loader=loader, undefined=StrictUndefined, finalize=_finalize_html,
                          autoescape=select_autoescape(enabled_extensions=("html.j2",), default=True),
                          trim_blocks=True, lstrip_blocks=True)
    elif kind == "md":
        env = Environment(loader=loader, undefined=StrictUndefined, finalize=_finalize_markdown,
                          autoescape=False, trim_blocks=True, lstrip_blocks=True,  # noqa: S701 - finalize escapes
                          keep_trailing_newline=True)
        env.filters.update(code_block=markdown.code_block, md=markdown.text, code=markdown.code, nest=_nest)
    else:
        raise InputError(f"no report format {kind!r}; expected md or html")
    _common_filters(env)
    return env


def _svg_data_uri(svg: Markup) -> Markup:
    encoded = base64.b64encode(str(svg).encode()).decode()
    return Markup(f"data:image/svg+xml;base64,{encoded}")  # noqa: S704 - base64 has no markup


def render_markdown(incident: Incident, *, context: ReportContext | None = None) -> str:
    """The report as Markdown (GitHub-flavoured; attacker text escaped; the chart as a data-URI image)."""
    ctx = context or build_context(incident)
    template = environment("md").get_template("incident_report.md.j2")
    text = template.render(ctx.as_template_vars() | {"activity_img": _svg_data_uri(ctx.activity_svg)})
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render_html(incident: Incident, *, context: ReportContext | None = None) -> str:
    """The report as one self-contained HTML document (inline CSS and SVG, no scripts, no external assets)."""
    ctx = context or build_context(incident)
    template = environment("html").get_template("incident_report.html.j2")
    return template.render(ctx.as_template_vars())


def report_json(incident: Incident, *, context: ReportContext | None = None) -> dict[str, object]:
    """The record, plus under `report` the figures, durations, categories and recommendations shown."""
    ctx = context or build_context(incident)
    return incident.record() | {"report": {
        "outcome": ctx.outcome,
        "business_summary": ctx.business_summary,
        "figures": {f.key: {"label": f.label, "value": f.value, "source": f.source} for f in ctx.figures},
        "durations": {d.key: {"label": d.label, "from": d.start, "to": d.end, "seconds": d.seconds}
                      for d in ctx.durations},
        "categories": {c.key: c.count for c in ctx.categories},
        "recommendations": [{"key": r.key, "title": r.title, "finding": r.finding, "action": r.action}
                            for r in ctx.recommendations],
        "queries": [q.filename for q in ctx.queries],
        "credentials": ctx.containment,
    }}


def render_json(incident: Incident, *, context: ReportContext | None = None) -> str:
    return json.dumps(report_json(incident, context=context), indent=2, ensure_ascii=False) + "\n"


def write_report(incident: Incident, out_dir: Path) -> list[Path]:
    """Write report.md, report.html, incident.json and queries/NN_<name>.sql into `out_dir`; return the paths."""
    ctx = build_context(incident)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("report.md", render_markdown(incident, context=ctx)),
                       ("report.html", render_html(incident, context=ctx)),
                       ("incident.json", render_json(incident, context=ctx))):
        (out_dir / name).write_text(text, encoding="utf-8")
        written.append(out_dir / name)
    for run in ctx.queries:
        path = out_dir / run.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run.sql, encoding="utf-8")
        written.append(path)
    return written


def unverified_banner(text: str, format_: str, reason: str) -> str:
    """A rendered report marked as read from evidence that did not verify (`keyresponse report --unverified`)."""
    message = f"UNVERIFIED: this report was rendered from a record that did not pass verification: {reason}"
    if format_ == "md":
        return f"> **{markdown.text(message)}**\n\n{text}"
    if format_ == "html":
        from markupsafe import escape

        banner = (f'<div role="alert" style="background:#b00020;color:#fff;padding:12px 16px;font-weight:bold">'
                  f"{escape(message)}</div>\n")
        return text.replace("<body>\n", "<body>\n" + banner, 1)
    payload = json.loads(text)
    return json.dumps({"unverified": message, **payload}, indent=2, ensure_ascii=False) + "\n"


def load_incident(path: Path) -> Incident:
    """Read an incident record (or a report's incident.json, whose `report` part is ignored)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("report", None)
    return Incident.model_validate(data)
