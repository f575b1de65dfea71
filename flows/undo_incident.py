"""Undo an incident: replay its ledger in reverse (what can be undone), newest change first.

The `undo-incident` deployment runs this flow; it is a dry run unless `dry_run` is false. The dry
run lists every change the ledger holds: each one that would be undone (with what AWS shows now),
each that cannot be undone (a deletion) and why, and each an earlier undo already reversed. A real
run undoes and verifies each change and records it in the ledger, so running it again is a no-op
that says so. `keyresponse undo INCIDENT_ID [--apply]` does the same from a shell.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.logging import get_run_logger

from keyresponse.errors import InputError
from tasks.actions import ActionContext, registry, undo_incident


@task(name="undo_ledger", task_run_name="undo_ledger:{incident_id}")
def undo_ledger(incident_id: str, dry_run: bool) -> dict[str, Any]:
    ctx = ActionContext.create(incident_id, dry_run=dry_run)
    if not ctx.ledger.path.exists():
        raise InputError(f"no ledger for incident {incident_id} at {ctx.ledger.path}")
    result = undo_incident(ctx, registry()).as_dict()
    log = get_run_logger()
    for item in result["planned"]:
        state = ("AWS already shows its before-state" if item["would_change"] is False
                 else f"cannot read it now: {item['problem']}" if item["would_change"] is None
                 else f"restores {item['restores']}, AWS shows {item['current']}")
        log.info("would undo: %s %s (%s)", item["action"], item["label"], state)
    for item in result["undone"]:
        log.info("undone: %s %s -> %s%s", item["action"], item["label"], item["after"],
                 "" if item["changed"] else " (already in its before-state)")
    for item in result["skipped"]:
        log.info("not undone: %s %s (%s)", item["action"], item["label"], item["reason"])
    for item in result["already_undone"]:
        log.info("already undone at %s, left alone: %s %s", item["undone_at"], item["action"], item["label"])
    log.info("%s", result["summary"])
    return result


@flow(name="undo-incident", flow_run_name="undo:{incident_id}")
def undo_incident_flow(incident_id: str, dry_run: bool = True) -> dict[str, Any]:
    """Dry run by default: lists what would be undone. Deletions cannot be undone and are listed."""
    return undo_ledger(incident_id, dry_run)
