"""`keyresponse report INCIDENT_ID`: re-render an incident's report from its stored record.

The record is `incident.json` in the incident's evidence store (`keyresponse.evidence`: the
Object Lock bucket or the local folder). A record written beside the ledger,
`<settings.home>/incidents/<id>/incident.json`, is read when the store has none.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from keyresponse.cli._common import command
from keyresponse.errors import InputError

FORMATS = ("md", "html", "json")


def read_record(incident_id: str) -> bytes:
    """The stored `incident.json` of an incident; InputError when there is none."""
    from keyresponse.evidence import open_store
    from keyresponse.ledger import validate_incident_id
    from keyresponse.settings import get_settings

    store = open_store(validate_incident_id(incident_id))
    data = store.get("incident.json")
    if data is not None:
        return data
    beside = get_settings().home / "incidents" / incident_id / "incident.json"
    if beside.exists():
        return beside.read_bytes()
    raise InputError(f"no incident record for {incident_id}: neither {store.location}/incident.json nor {beside}")


@command
def report(
    incident_id: Annotated[str, typer.Argument(help="The incident whose report to render.")],
    format_: Annotated[str, typer.Option("--format", help="md, html or json.")] = "md",
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of standard output.")] = None,
) -> None:
    """Render the incident report (Markdown, one HTML file, or the JSON behind both) from the evidence store."""
    import json

    from keyresponse.incident import Incident
    from keyresponse.report import render_html, render_json, render_markdown

    if format_ not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {format_!r}")
    try:
        payload = json.loads(read_record(incident_id))
        payload.pop("report", None)
        incident = Incident.model_validate(payload)
    except ValueError as exc:  # bad JSON, or a pydantic ValidationError
        raise InputError(f"the stored record of {incident_id} is not an incident record: {exc}") from exc
    render = {"md": render_markdown, "html": render_html, "json": render_json}[format_]
    text = render(incident)
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)
