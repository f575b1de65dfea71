"""The shape every mutating phase shares: plan → [approval] → apply → verify.

Run by the response run itself (so the run the receiver links to is the one that waits, and a
deployment run can be suspended: `keyresponse.approval`), and by the containment, eradication and
recovery flows on their own. Dry-run stops after the plan. A denial or a timeout changes nothing; a
timeout also escalates. Every outcome is returned as data for the incident record.

Containment offers the investigation's uncertain credentials to the approver beside the plan,
unchecked; those picked join the investigation's credentials for this phase and the ones after it
(the outcome's `investigation`), and the plan recorded is the plan applied. Without an approval
(early containment, `KEYRESPONSE_REQUIRE_APPROVAL=false`) none is ever added.

A phase asked again later (containment reopened because it did not hold: `keyresponse.containment_check`)
numbers its questions after the ones asked before (`first_round`), so each question keeps its own
pause key and journaled answer, and shows why it is asked (`why`).
"""

from __future__ import annotations

from typing import Any

from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from keyresponse.approval import PlanChange, PlanView, pause_key, request_approval, with_uncertain
from keyresponse.journal import Journal
from keyresponse.model import InvestigationRecord
from keyresponse.notifications import IncidentMessage, send
from keyresponse.settings import get_settings
from tasks.plan import Phase
from tasks.response import apply_phase, find_keys_minted_since, plan_phase, record_approval, verify_phase


def _link() -> str | None:
    ui = get_settings().ui_url
    run_id = flow_run.get_id()
    return f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui and run_id else None


#: Approval rounds in one phase: the plan, then (at most twice) the steps it gained since.
APPROVAL_ROUNDS = 3


def run_phase(phase: Phase, incident_id: str, investigation: InvestigationRecord, *, dry_run: bool,
              approval: bool, only: list[str] | None = None, journal: Journal | None = None,
              first_round: int = 1, why: str | None = None) -> dict[str, Any]:
    """Run one phase; returns {phase, status, plan, approval, approvals, ledger, verified, unapproved}, and
    `investigation` (as data: `InvestigationRecord.model_dump(mode="json", exclude_unset=True)`) when the
    approval changed it.

    With a `journal` (the response run's), each answer is kept with the changes it approved: a run
    executed again (resumed after a suspension, retried after a crash) applies what was approved
    then, and asks for anything the plan gained since. `first_round` > 1 asks the phase again after
    rounds already asked (a reopened containment), saying `why` above the plan."""
    plan = plan_phase(incident_id, investigation, phase, only)
    outcome: dict[str, Any] = {"phase": phase, "plan": plan.data(), "approval": None, "approvals": [],
                               "ledger": [], "verified": 0, "unapproved": []}
    pending = plan.pending()
    if dry_run:
        outcome["status"] = "dry_run"
        return outcome
    if not pending:
        earlier = _journaled_answers(journal, phase, first_round)
        if earlier and earlier[0]["decision"] == "approve":  # died after applying, before the phase was closed
            outcome.update(approvals=earlier, approval=earlier[0], status="applied")
            return outcome
        outcome["status"] = "nothing_to_do"
        return outcome
    if approval:
        send(IncidentMessage(incident_id, "approval_requested", f"[{incident_id}] approve {phase}?",
                             f"{len(pending)} change(s) wait for approval in the Prefect UI.", _link()))
        approved, _ = _approve(phase, incident_id, investigation, plan, only, outcome, journal, first_round, why)
        if approved is None:
            return outcome
    else:
        _apply(outcome, incident_id, investigation, phase, only, None)
    outcome["status"] = "applied"
    send(IncidentMessage(incident_id, "outcome", f"[{incident_id}] {phase} applied",
                         f"{len(outcome['ledger'])} change(s) applied and verified.", _link()))
    return outcome


def _answer(phase: Phase, round_: int) -> str:
    """The journal's name for the answer to one approval question."""
    return f"approval-{phase}-{round_}"


def _journaled_answers(journal: Journal | None, phase: Phase, first_round: int = 1) -> list[dict[str, Any]]:
    """The answers this run was given for `phase` (from `first_round`) before it was executed again, in order."""
    answers = []
    for round_ in range(first_round, first_round + APPROVAL_ROUNDS):
        given = journal.get(_answer(phase, round_)) if journal is not None else None
        if given is None:
            break
        answers.append(given["answer"])
    return answers


def _apply(outcome: dict[str, Any], incident_id: str, investigation: InvestigationRecord, phase: Phase,
           only: list[str] | None, approved: list[str] | None) -> None:
    """Apply and verify the `approved` steps (every step: None), adding to the outcome."""
    outcome["ledger"] += apply_phase(incident_id, investigation, phase, only, approved)
    outcome["verified"] += verify_phase(incident_id, investigation, phase, only, approved)


def _approve(phase: Phase, incident_id: str, investigation: InvestigationRecord, plan: PlanView,
             only: list[str] | None, outcome: dict[str, Any], journal: Journal | None,
             first_round: int = 1, why: str | None = None) -> tuple[list[str] | None, InvestigationRecord]:
    """Ask until every step to apply was approved as shown; returns (the approved step keys, the
    investigation as approved), or (None, …) when nothing may be applied (denied, timed out).

    Each decision is stored with the changes it approved and their SHA-256, then those changes are
    applied at once (the attacker may be racing). Then the plan is made again: a step it gained (an
    uncertain credential the approver added, a key minted on a user in scope since the logs were
    read) is asked for in a new approval, showing only those steps; denied, nothing more runs. Each
    question has its own pause key; a run executed again gets the same questions' answers back
    (from Prefect, and from the journal with the changes each approved, which are what it approves:
    never the plan of now)."""
    settings = get_settings()
    log = get_run_logger()
    offered = investigation.uncertain_credentials if phase == "containment" and why is None else []
    shown = plan.model_copy(update={"uncertain_credentials": tuple(offered), "why": why})
    approved: list[str] = []
    for round_ in range(first_round, first_round + APPROVAL_ROUNDS):
        asked = shown.pending()
        answer = request_approval(phase, incident_id, shown, timeout=settings.approval_timeout_seconds,
                                  poll_interval=settings.approval_poll_seconds,
                                  key=pause_key(phase, round_))
        given = journal.get(_answer(phase, round_)) if journal is not None else None
        if given is not None:  # answered before this run was executed again: bound to what it approved then
            answer, asked = given["answer"], [PlanChange.model_validate(c) for c in given["changes"]]
            log.info("%s of %s: answer %d from an earlier execution of this run (%s by %s)", phase, incident_id,
                     round_, answer["decision"], answer["approver"])
        outcome["approvals"].append(answer)
        outcome["approval"] = outcome["approval"] or answer
        if given is None and answer["decision"] == "approve":
            answer["plan_sha256"] = record_approval(incident_id, investigation.account_id, phase, answer,
                                                    [c.data() for c in asked], round_)
        if given is None and journal is not None and answer["decision"] in ("approve", "deny"):
            journal.put(_answer(phase, round_), {"answer": answer, "changes": [c.data() for c in asked]})
        if answer["decision"] != "approve":
            if round_ == first_round:
                _refused(phase, incident_id, answer, outcome, log)
                return None, investigation
            log.warning("%s of %s: %d step(s) added since the approval were not approved (%s); applying only "
                        "what was", phase, incident_id, len(asked), answer["decision"])
            outcome["unapproved"] = [c.key for c in asked]
            break
        approved += [c.key for c in asked if c.key is not None]
        log.info("%s of %s approved by %s (%d step(s), plan sha256 %s)", phase, incident_id, answer["approver"],
                 len(asked), answer["plan_sha256"][:12])
        if answer.get("also_contain"):
            log.info("%s: the approver added uncertain credential(s) %s", incident_id, ", ".join(answer["also_contain"]))
            investigation = with_uncertain(investigation, answer["also_contain"])
            outcome["investigation"] = investigation.model_dump(mode="json", exclude_unset=True)
        _apply(outcome, incident_id, investigation, phase, only, [c.key for c in asked if c.key is not None])
        minted = find_keys_minted_since(incident_id, investigation) if only is None else []
        if minted:  # the world changed while the approver read the plan: the plan gains their steps
            investigation = investigation.model_copy(update={"credentials": [*investigation.credentials, *minted]})
            outcome["investigation"] = investigation.model_dump(mode="json", exclude_unset=True)
        current = plan_phase(incident_id, investigation, phase, only)
        outcome["plan"] = current.data()
        extra = [c for c in current.pending() if c.key not in set(approved)]
        outcome["unapproved"] = [c.key for c in extra]
        if not extra:
            break
        news = "; ".join(e for c in minted for e in c.evidence)
        shown = PlanView(phase=phase, changes=tuple(extra), notes=current.notes,
                         why=(f"{len(extra)} step(s) were not in the plan {answer['approver']} approved: the plan "
                              "changed since (uncertain credentials added, or the account changed"
                              + (f": {news}" if news else "") + "). Approve them too, or deny to apply only what "
                              "was approved."))
    else:
        log.warning("%s of %s: steps still unapproved after %d rounds, left out: %s", phase, incident_id,
                    APPROVAL_ROUNDS, ", ".join(outcome["unapproved"]))
    return approved, investigation


def _refused(phase: Phase, incident_id: str, answer: dict[str, Any], outcome: dict[str, Any], log: Any) -> None:
    settings = get_settings()
    if answer["decision"] == "timeout":
        log.error("%s of %s was not approved within %s s: escalating, nothing changed", phase, incident_id,
                  settings.approval_timeout_seconds)
        send(IncidentMessage(incident_id, "escalation", f"[{incident_id}] {phase} NOT approved in time",
                             "Nothing was changed. A responder must decide now.", _link()))
        outcome["status"] = "timed_out"
    else:
        log.warning("%s of %s denied by %s: %s", phase, incident_id, answer["approver"], answer["reason"])
        outcome["status"] = "denied"
