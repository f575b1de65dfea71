"""`keyresponse report INCIDENT_ID`: re-render an incident's report from its stored, verified record.

The record is `incident.json` in the incident's evidence store (`keyresponse/evidence.py`: the
Object Lock bucket or the local folder). Before anything is rendered the store is verified as
`keyresponse verify-evidence` does (the manifest's hash chain, every object and pinned S3 version,
the head recorded in the ledger folder, `--head` when given) and `incident.json` is re-hashed as
read; a record that fails is refused (exit 1) with the file and the mismatch named.

`--unverified` renders it all the same, under a banner saying it did not verify and why. A record
written beside the ledger, `<settings.home>/incidents/<id>/incident.json`, is in no manifest: it is
read only with `--unverified`, when the store has none.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from keyresponse.cli._common import command
from keyresponse.errors import InputError, VerificationFailed

FORMATS = ("md", "html", "json")
RECORD = "incident.json"


def read_record(incident_id: str, *, head: str | None = None, unverified: bool = False) -> tuple[bytes, str | None]:
    """The stored `incident.json` of an incident, verified, and None; with `unverified`, a record that
    fails verification (or one beside the ledger) and why it is not verified. InputError when there is
    none, VerificationFailed when it does not verify (without `unverified`)."""
    from keyresponse.evidence import open_store, read_verified
    from keyresponse.ledger import validate_incident_id
    from keyresponse.settings import get_settings

    store = open_store(validate_incident_id(incident_id))
    try:
        data = read_verified(store, RECORD, head=head)
    except VerificationFailed as exc:
        if not unverified:
            raise VerificationFailed(f"refusing to render the report of {incident_id} from its {RECORD}: {exc} "
                                     "(--unverified renders it under a warning banner)") from exc
        stored = store.get(RECORD)
        if stored is None:
            raise
        return stored, str(exc)
    if data is not None:
        return data, None
    beside = get_settings().home / "incidents" / incident_id / RECORD
    if beside.exists():
        if not unverified:
            raise VerificationFailed(f"refusing to render the report of {incident_id}: the evidence store "
                                     f"{store.location} has no {RECORD}, and {beside} is in no manifest, so it "
                                     "cannot be verified (--unverified renders it under a warning banner)")
        return beside.read_bytes(), f"{beside} is in no evidence manifest"
    raise InputError(f"no incident record for {incident_id}: neither {store.location}/{RECORD} nor {beside}")


@command
def report(
    incident_id: Annotated[str, typer.Argument(help="The incident whose report to render.")],
    format_: Annotated[str, typer.Option("--format", help="md, html or json.")] = "md",
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of standard output.")] = None,
    head: Annotated[str | None, typer.Option(
        "--head", help="A published evidence chain head to verify against (the Prefect artifact evidence-<id>).")] = None,
    unverified: Annotated[bool, typer.Option(
        "--unverified", help="Render a record that fails verification, under a warning banner.")] = False,
) -> None:
    """Render the incident report (Markdown, one HTML file, or the JSON behind both) from the verified evidence store."""
    import json

    from keyresponse.cli.verify_evidence import published_head
    from keyresponse.incident import Incident
    from keyresponse.report import render_html, render_json, render_markdown, unverified_banner

    if format_ not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {format_!r}")
    data, why = read_record(incident_id, head=published_head(incident_id, head, False), unverified=unverified)
    try:
        payload = json.loads(data)
        payload.pop("report", None)
        incident = Incident.model_validate(payload)
    except ValueError as exc:  # bad JSON, or a pydantic ValidationError
        raise InputError(f"the stored record of {incident_id} is not an incident record: {exc}") from exc
    render = {"md": render_markdown, "html": render_html, "json": render_json}[format_]
    text = render(incident)
    if why is not None:
        text = unverified_banner(text, format_, why)
        typer.echo(f"keyresponse: warning: the report of {incident_id} is UNVERIFIED: {why}", err=True)
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)
