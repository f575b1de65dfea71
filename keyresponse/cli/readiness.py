"""`keyresponse readiness`: is the account ready for the next exposed key, and what would close the gaps.

Read-only unless `--apply`: then the hardening plan is applied under the action contract (every change
in the ledger of a `hardening-…` incident; `--undo INCIDENT` replays it in reverse). `--cloudformation
FILE` writes the same plan as a CloudFormation template.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from keyresponse.cli._common import command, print_json
from keyresponse.errors import InputError


def _regions(value: str | None) -> list[str] | None:
    if not value:
        return None
    regions = [r.strip() for r in value.split(",") if r.strip()]
    bad = [r for r in regions if not r.replace("-", "").isalnum() or r.count("-") < 2]
    if bad:
        raise InputError(f"--regions: {', '.join(bad)} is not a region name (like us-east-1)")
    return regions


@command
def readiness(
    as_json: bool = typer.Option(False, "--json", help="Print the checks (and plan) as one JSON object."),
    regions: str | None = typer.Option(None, "--regions", help="Comma-separated regions (default: all enabled)."),
    trail_bucket: str | None = typer.Option(None, "--trail-bucket", help="The trail bucket when there is no trail."),
    webhook_url: str = typer.Option("https://keyresponse.example.com", "--webhook-url",
                                    help="Base URL of the alert receiver (EventBridge posts to /alerts/<source>)."),
    no_data_events: bool = typer.Option(False, "--no-data-events", help="Do not require S3/Lambda data events."),
    cloudformation: Path | None = typer.Option(None, "--cloudformation", help="Write the plan as a CloudFormation "
                                                                              "template (JSON) to this file."),
    apply: bool = typer.Option(False, "--apply", help="Apply the hardening plan (asks for confirmation)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    undo: str | None = typer.Option(None, "--undo", help="Undo the hardening run with this incident id."),
) -> None:
    """Check GuardDuty, CloudTrail, Object Lock, the Athena table, alert routes, the responder role, the root
    user and long-lived keys; plan (and with --apply, make) the changes that close the gaps."""
    # imported here, not at the top: every command would pay for pandas and boto3 at start
    from keyresponse.readiness import ReadinessOptions, assess, readiness_for_report, render_markdown, to_json
    from keyresponse.readiness.model import DATA_EVENT_TYPES
    from keyresponse.settings import get_settings
    from tasks.actions import ActionContext, Clients, apply_steps, undo_incident
    from tasks.hardening import registry
    from tasks.hardening._plan import cloudformation_template, plan_hardening

    settings = get_settings()
    if undo:
        ctx = ActionContext.create(undo, dry_run=False, settings=settings)
        if not ctx.ledger.path.exists():
            raise InputError(f"no ledger for hardening run {undo} at {ctx.ledger.path}")
        report = undo_incident(ctx, registry())
        for entry in report.undone:
            typer.echo(f"undone {entry.action} {entry.target.get('kind')}:{entry.target.get('id')}")
        for entry, why in report.skipped:
            typer.echo(f"skipped {entry.action} {entry.target.get('kind')}:{entry.target.get('id')}: {why}")
        return
    options = ReadinessOptions(regions=_regions(regions), webhook_url=webhook_url, trail_bucket=trail_bucket,
                               data_events=[] if no_data_events else list(DATA_EVENT_TYPES))
    clients = Clients()
    checks = assess(clients, settings, options)
    plan = plan_hardening(checks, options, settings)
    if cloudformation is not None:
        cloudformation.write_text(json.dumps(cloudformation_template(plan, options, settings), indent=2) + "\n",
                                  encoding="utf-8")
    if as_json and not apply:
        print_json({**to_json(checks), "plan": [s.label for s in plan.steps], "manual": plan.manual,
                    "recommendations": readiness_for_report(checks)})
        return
    if not as_json:
        typer.echo(render_markdown(checks))
        typer.echo(f"Hardening plan: {len(plan.steps)} step(s)")
        for step in plan.steps:
            typer.echo(f"  {step.label}")
        for note in plan.manual:
            typer.echo(f"  manual: {note}")
    if not apply or not plan.steps:
        return
    if not yes and not typer.confirm(f"apply {len(plan.steps)} hardening step(s)?"):
        raise typer.Exit(1)
    incident_id = f"hardening-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    ctx = ActionContext.create(incident_id, dry_run=False, clients=clients, settings=settings)
    written = apply_steps(ctx, plan.steps)
    after = assess(clients, settings, options)
    if as_json:
        print_json({**to_json(after), "incident_id": incident_id, "applied": len(written)})
        return
    typer.echo(f"applied {len(written)} change(s); ledger {ctx.ledger.path}; "
               f"undo: keyresponse readiness --undo {incident_id}")
    typer.echo(render_markdown(after))
