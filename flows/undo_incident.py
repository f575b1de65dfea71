"""Undo an incident: replay its ledger in reverse (what can be undone), newest change first.

The `undo-incident` deployment runs this flow; it is a dry run unless `dry_run` is false. The dry
run lists every change the ledger holds: each one that would be undone (with what AWS shows now),
each that cannot be undone (a deletion) and why, and each an earlier undo already reversed. A real
run undoes and verifies each change and records it in the ledger, so running it again is a no-op
that says so. `keyresponse undo INCIDENT_ID [--apply]` does the same from a shell.

A real run is approved first. Whoever reaches the Prefect API can start this deployment, and undoing
a containment gives the attacker back the key: so the real run makes the dry run, shows it in an
approval form (the same as the response phases', keyresponse.approval: every change it will undo,
with what AWS shows now, and what it cannot undo), and waits. Approved, it undoes exactly the
changes shown (one the ledger gained since is left alone, in `unapproved`); denied or unanswered
within `KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS`, it changes nothing. The decision is stored in the
incident's evidence (`approval-undo-<flow run id>-<attempt>.json`, with the SHA-256 of the changes
shown) before anything is undone, and returned under `approval`. Nothing to undo: nothing to approve.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from keyresponse.approval import PlanChange, PlanView, request_approval
from keyresponse.errors import InputError
from keyresponse.notifications import IncidentMessage, send
from keyresponse.settings import get_settings
from tasks.actions import ActionContext, undo_incident
from tasks.registry import registry
from tasks.response import plan_digest


@task(name="undo_ledger", task_run_name="undo_ledger:{incident_id}")
def undo_ledger(incident_id: str, dry_run: bool, approved: list[str] | None = None) -> dict[str, Any]:
    """Replay the ledger (dry: list only); with `approved` (entry ids), undo only those."""
    ctx = ActionContext.create(incident_id, dry_run=dry_run)
    if not ctx.ledger.path.exists():
        raise InputError(f"no ledger for incident {incident_id} at {ctx.ledger.path}")
    result = undo_incident(ctx, registry(), only=approved).as_dict()
    log = get_run_logger()
    for item in result["planned"]:
        log.info("would undo: %s %s (%s)", item["action"], item["label"], _state(item))
    for item in result["undone"]:
        log.info("undone: %s %s -> %s%s", item["action"], item["label"], item["after"],
                 "" if item["changed"] else " (already in its before-state)")
    for item in result["skipped"]:
        log.info("not undone: %s %s (%s)", item["action"], item["label"], item["reason"])
    for item in result["already_undone"]:
        log.info("already undone at %s, left alone: %s %s", item["undone_at"], item["action"], item["label"])
    for item in result["unapproved"]:
        log.warning("not in the approved undo, left alone: %s %s", item["action"], item["label"])
    log.info("%s", result["summary"])
    return result


def _state(item: dict[str, Any]) -> str:
    if item["would_change"] is False:
        return "AWS already shows its before-state"
    if item["would_change"] is None:
        return f"cannot read it now: {item['problem']}"
    return f"restores {item['restores']}, AWS shows {item['current']}"


def undo_plan(preview: dict[str, Any]) -> PlanView:
    """The dry run as the approval form shows it: one row per change the real run will undo."""
    changes = [PlanChange(action=f"undo {item['action']}", label=item["label"], target=item["target"],
                          key=item["entry_id"], done=False, summary=_state(item)) for item in preview["planned"]]
    notes = [f"cannot be undone, left as it is: {item['action']} {item['label']} ({item['reason']})"
             for item in preview["skipped"]]
    if preview["already_undone"]:
        notes.append(f"{len(preview['already_undone'])} change(s) were undone by an earlier run and are left alone")
    return PlanView(phase="undo", changes=tuple(changes), notes=tuple(notes),
                    why="Undoing gives back what containment took away (a key made active again, a session policy "
                        "removed): approve only when the incident is over or the change was a mistake.",
                    closing="Deny to change nothing. The decision, your name and your reason are kept with the "
                            "incident's evidence and in this run's result.")


@task(name="record_undo_approval", task_run_name="record_undo_approval:{incident_id}")
def record_undo_approval(incident_id: str, answer: dict[str, Any], changes: list[dict[str, Any]]) -> str:
    """Store the decision with the changes it was shown and their SHA-256 before anything is undone."""
    ctx = ActionContext.create(incident_id, dry_run=True)
    digest = plan_digest(changes)
    if ctx.evidence is not None:
        ctx.evidence.put_json(f"approval-undo-{flow_run.get_id() or 'local'}-{flow_run.run_count or 1}.json",
                              {"incident_id": incident_id, "phase": "undo", "answer": answer,
                               "plan_sha256": digest, "changes": changes})
    return digest


@flow(name="undo-incident", flow_run_name="undo:{incident_id}")
def undo_incident_flow(incident_id: str, dry_run: bool = True) -> dict[str, Any]:
    """Dry run by default: lists what would be undone. Deletions cannot be undone and are listed. A
    real run (`dry_run` false) shows that list for approval first and undoes only what was approved."""
    preview = undo_ledger(incident_id, True)
    if dry_run:
        return preview
    if not preview["planned"]:
        return undo_ledger(incident_id, False, approved=[])
    settings = get_settings()
    plan = undo_plan(preview)
    send(IncidentMessage(incident_id, "approval_requested", f"[{incident_id}] approve undo?",
                         f"{len(plan.changes)} change(s) to undo wait for approval in the Prefect UI.", _link()))
    answer = request_approval("undo", incident_id, plan, timeout=settings.approval_timeout_seconds,
                              poll_interval=settings.approval_poll_seconds,
                              key=f"approve-undo-{flow_run.run_count or 1}")
    answer["plan_sha256"] = record_undo_approval(incident_id, answer, [c.data() for c in plan.changes])
    log = get_run_logger()
    if answer["decision"] != "approve":
        why = (f"denied by {answer['approver']}: {answer['reason']}" if answer["decision"] == "deny"
               else answer["reason"])
        log.warning("undo of %s not approved (%s): nothing was changed", incident_id, why)
        return {**preview, "dry_run": False, "approval": answer,
                "summary": f"incident {incident_id}: undo not approved ({why}); nothing was changed"}
    log.info("undo of %s approved by %s (%d change(s), sha256 %s)", incident_id, answer["approver"],
             len(plan.changes), answer["plan_sha256"][:12])
    result = undo_ledger(incident_id, False, approved=[c.key for c in plan.changes if c.key is not None])
    return {**result, "approval": answer}


def _link() -> str | None:
    ui = get_settings().ui_url
    run_id = flow_run.get_id()
    return f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui and run_id else None
