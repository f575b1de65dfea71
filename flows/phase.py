"""The shape every mutating phase shares: plan → [approval pause] → apply → verify.

Used by the containment, eradication and recovery flows. Dry-run stops after the plan. A denial or
a timeout changes nothing; a timeout also escalates. Every outcome is returned as data for the
incident record.

Containment offers the investigation's uncertain credentials to the approver beside the plan,
unchecked; those picked join the investigation's credentials for this phase and the ones after it
(the outcome's `investigation`), and the plan recorded is the plan applied. Without an approval
(early containment, `--no-approval`) none is ever added.
"""

from __future__ import annotations

from typing import Any

from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from keyresponse.approval import request_approval, with_uncertain
from keyresponse.notifications import IncidentMessage, send
from keyresponse.settings import get_settings
from tasks.plan import Phase
from tasks.response import apply_phase, plan_phase, verify_phase


def _link() -> str | None:
    ui = get_settings().ui_url
    run_id = flow_run.get_id()
    return f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui and run_id else None


def run_phase(phase: Phase, incident_id: str, investigation: dict[str, Any], *, dry_run: bool,
              approval: bool, only: list[str] | None = None) -> dict[str, Any]:
    """Run one phase; returns {phase, status, plan, approval, ledger, verified}."""
    settings = get_settings()
    log = get_run_logger()
    plan = plan_phase(incident_id, investigation, phase, only)
    outcome: dict[str, Any] = {"phase": phase, "plan": plan, "approval": None, "ledger": [], "verified": 0}
    pending = [c for c in plan["changes"] if not c["done"]]
    if dry_run:
        outcome["status"] = "dry_run"
        return outcome
    if not pending:
        outcome["status"] = "nothing_to_do"
        return outcome
    if approval:
        send(IncidentMessage(incident_id, "approval_requested", f"[{incident_id}] approve {phase}?",
                             f"{len(pending)} change(s) wait for approval in the Prefect UI.", _link()))
        offered = investigation.get("uncertain_credentials") or [] if phase == "containment" else []
        answer = request_approval(phase, incident_id, {**plan, "uncertain_credentials": offered},
                                  timeout=settings.approval_timeout_seconds,
                                  poll_interval=settings.approval_poll_seconds)
        outcome["approval"] = answer
        if answer["decision"] == "timeout":
            log.error("%s of %s was not approved within %s s: escalating, nothing changed", phase, incident_id,
                      settings.approval_timeout_seconds)
            send(IncidentMessage(incident_id, "escalation", f"[{incident_id}] {phase} NOT approved in time",
                                 "Nothing was changed. A responder must decide now.", _link()))
            outcome["status"] = "timed_out"
            return outcome
        if answer["decision"] != "approve":
            log.warning("%s of %s denied by %s: %s", phase, incident_id, answer["approver"], answer["reason"])
            outcome["status"] = "denied"
            return outcome
        log.info("%s of %s approved by %s", phase, incident_id, answer["approver"])
        if answer.get("also_contain"):
            log.info("%s also contains uncertain credential(s) %s, as the approver chose", incident_id,
                     ", ".join(answer["also_contain"]))
            investigation = with_uncertain(investigation, answer["also_contain"])
            outcome["investigation"] = investigation
            outcome["plan"] = plan_phase(incident_id, investigation, phase, only)
    outcome["ledger"] = apply_phase(incident_id, investigation, phase, only)
    outcome["verified"] = verify_phase(incident_id, investigation, phase, only)
    outcome["status"] = "applied"
    send(IncidentMessage(incident_id, "outcome", f"[{incident_id}] {phase} applied",
                         f"{len(outcome['ledger'])} change(s) applied and verified.", _link()))
    return outcome
