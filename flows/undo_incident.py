"""Undo an incident: replay its ledger in reverse (what can be undone), newest change first."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.logging import get_run_logger

from tasks.actions import ActionContext, Target, registry, undo_incident


@task(name="undo_ledger", task_run_name="undo_ledger:{incident_id}")
def undo_ledger(incident_id: str, dry_run: bool) -> dict[str, Any]:
    ctx = ActionContext.create(incident_id, dry_run=dry_run)
    report = undo_incident(ctx, registry())
    log = get_run_logger()
    # a ledger entry holds its target as JSON: the label comes from the Target it was dumped from
    skipped = [{"action": e.action, "target": Target.model_validate(e.target).label, "reason": r}
               for e, r in report.skipped]
    for s in skipped:
        log.info("not undone: %s %s (%s)", s["action"], s["target"], s["reason"])
    return {"undone": [e.model_dump(mode="json") for e in report.undone], "skipped": skipped}


@flow(name="undo-incident", flow_run_name="undo:{incident_id}")
def undo_incident_flow(incident_id: str, dry_run: bool = True) -> dict[str, Any]:
    """Dry run by default: lists what would be undone. Deletions cannot be undone and are listed."""
    return undo_ledger(incident_id, dry_run)
