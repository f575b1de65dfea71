"""`keyresponse contain`: plan (default) or apply the containment of an exposed access key.

Without `--apply` it prints the plan and changes nothing in AWS. With `--apply` it snapshots the
evidence, applies and verifies every step, and prints the ledger entries and the incident id.
The incident id defaults to `ir-<yyyymmdd>-<key id>`, so a rerun the same day (after a crash)
joins the same ledger and converges without repeating a change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from pydantic import ValidationError

from keyresponse.cli._common import command, print_json
from keyresponse.errors import InputError
from keyresponse.keys import validate_access_key_id
from keyresponse.model import InvestigationRecord


def default_incident_id(access_key_id: str) -> str:
    return f"ir-{datetime.now(UTC):%Y%m%d}-{access_key_id}"


def load_investigation(path: Path, access_key_id: str) -> InvestigationRecord:
    """The investigation in `path` (the JSON of `keyresponse investigate`), checked against its model."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the investigation {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path} is not an investigation result (expected one JSON object)")
    if data.get("access_key_id") != access_key_id:
        raise InputError(f"{path} investigates {data.get('access_key_id')}, not {access_key_id}")
    try:
        return InvestigationRecord.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path} is not an investigation result (docs/schemas/investigation.schema.json): {exc}") from exc


@command
def contain(
    access_key_id: str = typer.Option(..., "--access-key-id", help="The exposed access key (AKIA…)."),
    apply: bool = typer.Option(False, "--apply", help="Make the changes (default: print the plan only)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation before applying."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    investigation_file: Path | None = typer.Option(
        None, "--investigation", help="The JSON of `keyresponse investigate` (default: plan from IAM state)."),
    incident_id: str | None = typer.Option(None, "--incident-id", help="Default: ir-<yyyymmdd>-<key id>."),
) -> None:
    """Contain an exposed access key: deactivate it and derived keys, revoke sessions, and more."""
    from tasks.actions import ActionContext, apply_steps, plan_steps, screen_steps
    from tasks.plan import investigation_from_aws, plan_response

    key = validate_access_key_id(access_key_id)
    incident = incident_id or default_incident_id(key)
    ctx = ActionContext.create(incident, dry_run=not apply)
    investigation = (load_investigation(investigation_file, key) if investigation_file
                     else investigation_from_aws(ctx, key))
    plan = plan_response(investigation, "containment", default_region=ctx.settings.region,
                         accounts_in_scope=ctx.settings.accounts_in_scope)
    steps, refused = screen_steps(ctx, plan.steps)  # each refused step alone: the rest is still contained
    planned = plan_steps(ctx, steps)
    rows = [{"action": step.action.name, "target": step.target.label,
             "change": change.description if change else "already done"} for step, change in planned]
    rows += [{"action": r.action, "target": r.target.label, "change": f"refused: {r.reason}"} for r in refused]
    if not apply:
        if as_json:
            print_json({"incident_id": incident, "dry_run": True, "plan": rows, "notes": plan.notes})
        else:
            typer.echo(f"incident {incident} — containment plan (dry run, nothing changed):")
            for row in rows:
                typer.echo(f"  {row['action']:<34} {row['target']:<50} {row['change']}")
            for note in plan.notes:
                typer.echo(f"  note: {note}")
            typer.echo("run again with --apply to make these changes")
        return
    if not yes and not typer.confirm(f"apply {sum(1 for _, c in planned if c)} change(s)?"):
        raise typer.Exit(1)
    entries = apply_steps(ctx, steps, investigation=investigation)
    ledger = [entry.model_dump(mode="json") for entry in entries]
    if as_json:
        print_json({"incident_id": incident, "dry_run": False, "plan": rows, "notes": plan.notes,
                    "ledger": ledger, "ledger_path": str(ctx.ledger.path),
                    "evidence": ctx.evidence.location if ctx.evidence else None})
    else:
        for entry in entries:
            typer.echo(f"applied {entry.action} {entry.target.get('kind')}:{entry.target.get('id')} "
                       f"before={json.dumps(entry.before)} after={json.dumps(entry.after)}")
        if not entries:
            typer.echo("nothing to change: already contained")
        typer.echo(f"incident {incident}: ledger {ctx.ledger.path}; "
                   f"evidence {ctx.evidence.location if ctx.evidence else '-'}")
