"""`keyresponse undo INCIDENT_ID`: replay the incident's ledger in reverse (dry run unless --apply)."""

from __future__ import annotations

import typer

from keyresponse.cli._common import command, print_json
from keyresponse.errors import InputError
from keyresponse.ledger import validate_incident_id


@command
def undo(
    incident_id: str = typer.Argument(..., help="The incident whose changes to undo."),
    apply: bool = typer.Option(False, "--apply", help="Undo for real (default: list what would be undone)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Undo every reversible change of an incident, newest first; report the ones that cannot be undone."""
    from tasks.actions import ActionContext, undo_incident
    from tasks.registry import registry

    ctx = ActionContext.create(validate_incident_id(incident_id), dry_run=not apply)
    if not ctx.ledger.path.exists():
        raise InputError(f"no ledger for incident {incident_id} at {ctx.ledger.path}")
    if apply and not yes and not typer.confirm(f"undo the changes of incident {incident_id}?"):
        raise typer.Exit(1)
    result = undo_incident(ctx, registry()).as_dict()
    if as_json:
        print_json(result)
        return
    for item in result["planned"]:
        typer.echo(f"would undo {item['action']} {item['label']}"
                   + (f": cannot read it now: {item['problem']}" if item["would_change"] is None
                      else "" if item["would_change"] else " (AWS already shows its before-state)"))
    for item in result["undone"]:
        typer.echo(f"undone {item['action']} {item['label']} -> {item['after']}"
                   + ("" if item["changed"] else " (already in its before-state)"))
    for item in result["skipped"]:
        typer.echo(f"skipped {item['action']} {item['label']}: {item['reason']}")
    for item in result["already_undone"]:
        typer.echo(f"already undone at {item['undone_at']}: {item['action']} {item['label']}")
    typer.echo(result["summary"])
