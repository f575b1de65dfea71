"""`keyresponse undo INCIDENT_ID`: replay the incident's ledger in reverse (dry run unless --apply)."""

from __future__ import annotations

from typing import Any

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
    from tasks.actions import ActionContext, registry, undo_incident

    ctx = ActionContext.create(validate_incident_id(incident_id), dry_run=not apply)
    if not ctx.ledger.path.exists():
        raise InputError(f"no ledger for incident {incident_id} at {ctx.ledger.path}")
    if apply and not yes and not typer.confirm(f"undo the changes of incident {incident_id}?"):
        raise typer.Exit(1)
    report = undo_incident(ctx, registry())
    undone = [e.model_dump(mode="json") for e in report.undone]
    skipped: list[dict[str, Any]] = [
        {"action": e.action, "target": e.target, "entry_id": e.entry_id, "reason": why} for e, why in report.skipped]
    if as_json:
        print_json({"incident_id": incident_id, "dry_run": not apply, "undone": undone, "skipped": skipped})
        return
    for entry in report.undone:
        typer.echo(f"undone {entry.action} {entry.target.get('kind')}:{entry.target.get('id')} -> {entry.after}")
    for item in skipped:
        typer.echo(f"{'would undo' if item['reason'].startswith('dry run') else 'skipped'} "
                   f"{item['action']} {item['target'].get('kind')}:{item['target'].get('id')}: {item['reason']}")
    if not undone and not skipped:
        typer.echo(f"incident {incident_id}: nothing left to undo")
