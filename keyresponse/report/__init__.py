"""The post-incident report: one incident record (keyresponse.incident) → Markdown, HTML, JSON, SQL.

    write_report(incident, out_dir)   # report.md, report.html, incident.json, queries/NN_<name>.sql
    render_markdown(incident)         # for the Prefect Markdown artifact (publish_artifacts)
    render_html(incident)             # one self-contained file: inline CSS and SVG, no JavaScript

What the report shows is computed once, from the record, into the view model the templates read
(`model.build_context`); the templates (`reports/`) only lay it out. By job:

* `model`: the view model (`ReportContext`) and `build_context`;
* `figures`: the headline figures, the NIST timeline and its metrics, the outcome, the summary;
* `attack`: what the attacker did: activity by category (chart), credential graph, sources, impact;
* `response`: what the response did: actions, plan, and how each credential was contained;
* `queries`: the investigation's queries as runnable SQL;
* `rules`: the recommendation rules;
* `render`: the Jinja environments (escaping), the Markdown/HTML/JSON renderers, `write_report`;
* `artifacts`: the Prefect artifacts (the report; the evidence manifest's chain head);
* `formatting`: how times, durations, ARNs and targets are written.
* `reading`: the investigation read typed (`keyresponse.model.InvestigationRecord`).
"""

from keyresponse.intel.taxonomy import category_of as categorize
from keyresponse.report.artifacts import (
    artifact_key,
    evidence_artifact_key,
    publish_artifacts,
    publish_evidence_head,
    published_evidence_head,
)
from keyresponse.report.formatting import human_duration
from keyresponse.report.model import ReportContext, build_context
from keyresponse.report.queries import query_runs
from keyresponse.report.render import (
    load_incident,
    render_html,
    render_json,
    render_markdown,
    unverified_banner,
    write_report,
)
from keyresponse.report.response import credential_containment
from keyresponse.report.rules import recommendations

__all__ = [
    "ReportContext",
    "artifact_key",
    "build_context",
    "categorize",
    "credential_containment",
    "evidence_artifact_key",
    "human_duration",
    "load_incident",
    "publish_artifacts",
    "publish_evidence_head",
    "published_evidence_head",
    "query_runs",
    "recommendations",
    "render_html",
    "render_json",
    "render_markdown",
    "unverified_banner",
    "write_report",
]
