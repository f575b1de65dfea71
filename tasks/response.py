"""Prefect tasks that run a response phase's actions: plan (read-only), apply, verify.

Writes are never retried blindly: `apply_phase` has no Prefect retries (botocore already retries
throttling and 5xx with backoff), and a rerun converges because every action is check-then-act.

An approval binds its plan: given `approved` (the `step_key`s of the changes a human approved),
apply and verify act on those steps only. A step the plan holds now that was not approved is never
applied here; the phase flow asks for it in a new approval.

A step the guardrails refuse (a protected principal, the responder's own identity, an account out of
scope) is refused alone (`tasks.actions.screen_steps`): the plan lists it as done-and-refused, with
the reason as its summary (`REFUSAL_PREFIX`) and in its notes, so the approver, the incident record
and the report say why; it is escalated once per incident, phase and step (Slack/SNS, counts and
action names only); the rest of the phase goes on. It is never applied, approved or not.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from prefect import task
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from keyresponse.approval import PlanChange, PlanView
from keyresponse.aws import session_for_account
from keyresponse.guardrails import REFUSAL_PREFIX
from keyresponse.incident import CheckStage
from keyresponse.model import CredentialRecord, InvestigationRecord
from keyresponse.retry import retry_on_transient
from tasks.actions import (
    ActionContext,
    Clients,
    RefusedStep,
    Step,
    apply_steps,
    plan_steps,
    screen_steps,
)
from tasks.plan import Phase, ResponsePlan, plan_response
from tasks.registry import registry


def context(incident_id: str, account_id: str | None, *, dry_run: bool) -> ActionContext:
    """An action context in the key's account (a member account is reached through the response role)."""
    session: boto3.Session = session_for_account(account_id)
    run_id = flow_run.get_id()
    return ActionContext.create(incident_id, dry_run=dry_run, clients=Clients(session),
                                flow_run_id=str(run_id) if run_id else None)


def step_key(action: str, label: str) -> str:
    """What an approval names a step by: its action and its target's label (`deactivate_access_key:…`)."""
    return f"{action}:{label}"


def step_label(step: Step, home_account: str | None) -> str:
    """The target's label, with its account when that is not the incident's (a member account): two
    principals of one name in two accounts are two steps, approved one by one."""
    account = step.target.data.get("account_id")
    return step.target.label + (f" in account {account}" if account and account != home_account else "")


def _steps(investigation: InvestigationRecord, phase: Phase, ctx: ActionContext, only: list[str] | None,
           approved: list[str] | None = None) -> tuple[list[Step], list[RefusedStep], ResponsePlan]:
    """The phase's steps the guardrails allow (of `only`, and of `approved`), and those they refuse."""
    plan = plan_response(investigation, phase, ledger_entries=ctx.ledger.entries(),
                         accounts_in_scope=ctx.settings.accounts_in_scope)
    steps = [s for s in plan.steps if only is None or s.action.name in only]
    steps, refused = screen_steps(ctx, steps)
    if approved is not None:
        allowed = set(approved)
        home = investigation.account_id
        steps = [s for s in steps if step_key(s.action.name, step_label(s, home)) in allowed]
    return steps, refused, plan


def _escalate_refusals(incident_id: str, phase: Phase, refused: list[PlanChange]) -> None:
    """Tell a human, once per incident, phase and step, that steps were refused and need them.

    Which steps were escalated is kept in `<home>/incidents/<id>/escalated.json` (a phase is planned
    again after each approval round: the message goes out once). The message names counts and
    actions only; the principals and reasons are in the plan (the UI) and the report."""
    from keyresponse.notifications import IncidentMessage, send
    from keyresponse.settings import get_settings

    settings = get_settings()
    path = settings.home / "incidents" / incident_id / "escalated.json"
    sent: list[str] = json.loads(path.read_text()) if path.exists() else []
    new = [c for c in refused if f"{phase}:{c.key}" not in sent]
    if not new:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sent + [f"{phase}:{c.key}" for c in new]))
    run_id = flow_run.get_id()
    link = f"{settings.ui_url.rstrip('/')}/runs/flow-run/{run_id}" if settings.ui_url and run_id else None
    actions = ", ".join(sorted({c.action for c in new}))
    send(IncidentMessage(incident_id, "escalation", f"[{incident_id}] {phase}: {len(new)} step(s) refused",
                         f"{len(new)} step(s) of the {phase} plan were refused by the guardrails ({actions}): a "
                         "protected principal, the responder's own identity or an account out of scope. They were "
                         "left out and the rest goes on; a human must handle them by hand. The plan says why.", link))


@task(name="plan_phase", task_run_name="plan_{phase}:{incident_id}", retries=2, retry_delay_seconds=[1, 5], retry_jitter_factor=0.5,
      retry_condition_fn=retry_on_transient)
def plan_phase(incident_id: str, investigation: InvestigationRecord, phase: Phase,
               only: list[str] | None = None) -> PlanView:
    """The phase's changes, read-only: what each step would do, and what is already done."""
    ctx = context(incident_id, investigation.account_id, dry_run=True)
    steps, refused, plan = _steps(investigation, phase, ctx, only)
    home = investigation.account_id
    changes = []
    for step, change in plan_steps(ctx, steps):
        label = step_label(step, home)
        changes.append(PlanChange(action=step.action.name, target=step.target.model_dump(mode="json"),
                                  label=label, key=step_key(step.action.name, label),
                                  summary=change.description if change else "already done",
                                  requires_approval=step.action.requires_approval, done=change is None))
    notes = list(plan.notes)
    log = get_run_logger()
    refusals = []
    for item in refused:
        label = step_label(Step(registry()[item.action], item.target), home)
        refusals.append(PlanChange(action=item.action, target=item.target.model_dump(mode="json"), label=label,
                                   key=step_key(item.action, label), summary=REFUSAL_PREFIX + item.reason,
                                   requires_approval=registry()[item.action].requires_approval, done=True,
                                   refused=item.reason))
        notes.append(f"{item.action} on {label} was refused and left out: {item.reason}")
        log.warning("%s: %s refused and left out: %s", phase, item.label, item.reason)
    log.info("%s plan: %d step(s), %d to change, %d refused", phase, len(changes),
             sum(not c.done for c in changes), len(refusals))
    for foreign in plan.attacker_infrastructure:
        log.warning("attacker infrastructure, not a target: %s", foreign.note)
    if refusals:
        _escalate_refusals(incident_id, phase, refusals)
    return PlanView(phase=phase, changes=(*changes, *refusals), notes=tuple(notes),
                    attacker_infrastructure=tuple(plan.attacker_infrastructure))


@task(name="apply_phase", task_run_name="apply_{phase}:{incident_id}")
def apply_phase(incident_id: str, investigation: InvestigationRecord, phase: Phase,
                only: list[str] | None = None, approved: list[str] | None = None) -> list[dict[str, Any]]:
    """Apply and verify every step, or only the `approved` ones (guardrails first, evidence before the
    first write, ledger after each)."""
    ctx = context(incident_id, investigation.account_id, dry_run=False)
    steps, _, _ = _steps(investigation, phase, ctx, only, approved)
    log = get_run_logger()

    def progress(step: Step, entry: Any) -> None:
        log.info("%s %s", "applied" if entry else "already done", step.label)

    written = apply_steps(ctx, steps, investigation=investigation, after_each=progress)
    return [entry.model_dump(mode="json") for entry in written]


@task(name="verify_phase", task_run_name="verify_{phase}:{incident_id}", retries=2, retry_delay_seconds=[1, 5], retry_jitter_factor=0.5,
      retry_condition_fn=retry_on_transient)
def verify_phase(incident_id: str, investigation: InvestigationRecord, phase: Phase,
                 only: list[str] | None = None, approved: list[str] | None = None) -> int:
    """Re-read AWS for every step of the phase (or the `approved` ones); raises VerificationFailed if a
    change did not take."""
    ctx = context(incident_id, investigation.account_id, dry_run=True)
    steps, _, _ = _steps(investigation, phase, ctx, only, approved)
    for step in steps:
        step.action.verify(ctx.for_target(step.target), step.target)
    return len(steps)


@task(name="first_response", task_run_name="first_response:{incident_id}")
def first_response(incident_id: str) -> dict[str, Any] | None:
    """What the alert receiver already did about the key (see `tasks.first_response`), once it is done.

    None when the receiver did not act (low-confidence alert, automatic containment off, or the run
    was not started by the receiver)."""
    from tasks import first_response as first

    outcome = first.wait(incident_id)
    log = get_run_logger()
    if outcome is None:
        return None
    if outcome.get("status") in ("applied", "nothing_to_do"):
        log.info("the receiver contained %s at %s (%d change(s) in the ledger)", outcome.get("access_key_id"),
                 outcome.get("contained_at") or outcome.get("finished_at"), len(outcome.get("ledger") or []))
    else:
        log.warning("the receiver did not contain the key: %s (%s)", outcome.get("status"), outcome.get("reason"))
    return outcome


def plan_digest(changes: list[dict[str, Any]]) -> str:
    """SHA-256 of what an approver was shown: each change's key and summary, in order."""
    import hashlib

    shown = [{"key": c["key"], "summary": c["summary"]} for c in changes]
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()


@task(name="record_approval", task_run_name="record_approval_{phase}:{incident_id}", retries=2,
      retry_delay_seconds=[1, 5], retry_jitter_factor=0.5,
      retry_condition_fn=retry_on_transient)
def record_approval(incident_id: str, account_id: str | None, phase: Phase, answer: dict[str, Any],
                    changes: list[dict[str, Any]], round_: int) -> str:
    """Store the decision with exactly the changes it approved, and their SHA-256, in the evidence
    store (`approval-<phase>-<round>.json`) before anything is applied; returns the digest."""
    ctx = context(incident_id, account_id, dry_run=True)
    digest = plan_digest(changes)
    if ctx.evidence is not None:
        ctx.evidence.put_json(f"approval-{phase}-{round_}.json",
                              {"incident_id": incident_id, "phase": phase, "round": round_, "answer": answer,
                               "plan_sha256": digest, "changes": changes})
    return digest


@task(name="find_keys_minted_since", task_run_name="find_keys_minted_since:{incident_id}", retries=2,
      retry_delay_seconds=[1, 5], retry_jitter_factor=0.5, retry_condition_fn=retry_on_transient)
def find_keys_minted_since(incident_id: str, investigation: InvestigationRecord) -> list[CredentialRecord]:
    """Access keys that users in the incident's scope gained after the logs the investigation read:
    minted while the response waited (the attacker racing the responder), so the analysis could not
    see them. Each as a credential of the investigation, with its evidence; the caller asks a human
    before anything is done to them."""
    from datetime import datetime

    from keyresponse.guardrails import parse_principal

    window_end = investigation.window.end
    if not window_end:
        return []
    since = datetime.fromisoformat(window_end.replace("Z", "+00:00"))
    known = {c.access_key_id for c in investigation.credentials} | {
        c.access_key_id for c in investigation.uncertain_credentials}
    arns = {c.principal_arn for c in investigation.credentials if c.principal_arn}
    if investigation.principal_arn:
        arns.add(investigation.principal_arn)
    ctx = context(incident_id, investigation.account_id, dry_run=True)
    iam = ctx.client("iam")
    found: list[CredentialRecord] = []
    for arn in sorted(arns):
        principal = parse_principal(arn)
        if principal.kind != "user":
            continue
        for meta in iam.list_access_keys(UserName=principal.name)["AccessKeyMetadata"]:
            created = meta["CreateDate"]
            if meta["AccessKeyId"] in known or created <= since:
                continue
            stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
            found.append(CredentialRecord(
                access_key_id=meta["AccessKeyId"], kind="access_key", parent=None, created_by_event=None,
                principal_arn=arn, confidence="medium",
                evidence=[f"created on {principal.name} at {stamp}, after the logs investigated "
                          f"(to {window_end}): minted while the response was under way"]))
    if found:
        get_run_logger().warning("%s: %d key(s) minted on users in scope since the investigation: %s", incident_id,
                                 len(found), ", ".join(c.access_key_id for c in found))
    return found


@task(name="check_containment", task_run_name="check_containment_{stage}:{incident_id}", retries=2,
      retry_delay_seconds=[1, 5], retry_jitter_factor=0.5, retry_condition_fn=retry_on_transient)
def check_containment(incident_id: str, record: dict[str, Any], stage: CheckStage, logs: str | None = None,
                      rescope: bool = False) -> dict[str, Any]:
    """Did containment hold (`keyresponse.containment_check`)? Read-only. Returns a
    `keyresponse.incident.ContainmentCheck` as data, with `minted`: the credentials found in the gap,
    for the new containment round.

    Reads the incident's whole ledger (the receiver's first response and every execution of the run),
    what the contained credentials did since (`queries/key_activity_after.sql`), whether each
    containment change still in effect still holds in AWS (its action's `verify`), and with `rescope`
    the credentials minted in the gap (CloudTrail, then IAM)."""
    from datetime import UTC, datetime, timedelta

    from keyresponse import containment_check as check
    from keyresponse.errors import VerificationFailed
    from keyresponse.incident import Breach, ContainmentCheck, Incident
    from keyresponse.investigation import open_engine
    from keyresponse.ledger import Ledger
    from keyresponse.settings import get_settings
    from tasks.actions import Target, left_in_place
    from tasks.containment import ACTIONS

    settings = get_settings()
    log = get_run_logger()
    now = datetime.now(UTC)
    investigation = InvestigationRecord.model_validate(record["investigation"])
    entries = [e for e in Ledger(incident_id).entries() if not e.dry_run]
    incident = Incident.model_validate({"incident_id": incident_id, "status": "failed",
                                        "investigation": record["investigation"],
                                        "plans": record.get("plans") or {},
                                        "ledger": [e.model_dump(mode="json") for e in entries]})
    contained = check.contained_credentials(incident)
    minted: list[CredentialRecord] = []
    with open_engine(logs) as engine:
        activity = check.activity_after(engine, contained, now=now,
                                        grace=timedelta(seconds=settings.containment_grace_seconds))
        since = check.gap_start(investigation, record["timeline"].get("analysis_completed_at"),
                                timedelta(seconds=settings.recheck_delay_seconds))
        if rescope and since is not None:
            minted = check.minted_in_gap(engine, investigation.credentials, since=since, until=now)
    breaches = check.activity_breaches(activity)
    actions = registry()
    containing = {action.name for action in ACTIONS}
    ctx = context(incident_id, investigation.account_id, dry_run=True)
    seen: set[str] = set()
    for entry, _ in left_in_place(entries, actions):
        target = Target.model_validate(entry.target)
        if entry.action not in containing or f"{entry.action}:{target.label}" in seen:
            continue
        seen.add(f"{entry.action}:{target.label}")
        action = actions[entry.action]
        try:
            action.verify(ctx.for_target(target), target)
        except VerificationFailed as exc:
            breaches.append(Breach(kind="reverted", subject=target.label,
                                         detail=f"{action.describe(target, entry.before)}, applied at "
                                                f"{entry.applied_at[:19]}Z, no longer holds: {exc}"))
    if rescope:
        known = {c.access_key_id for c in minted}
        minted += [c for c in find_keys_minted_since.fn(incident_id, investigation) if c.access_key_id not in known]
    breaches += check.minted_breaches(minted)
    result = ContainmentCheck(stage=stage, checked_at=check.stamp(now),
                              credentials=[c.access_key_id for c in contained], activity=activity, breaches=breaches)
    if breaches:
        log.warning("%s: containment did not hold (%s): %s", incident_id, stage,
                    "; ".join(f"{b.kind} {b.subject}" for b in breaches))
    else:
        log.info("%s: containment holds (%s): %d credential(s), %d call group(s) after containment, all failed or "
                 "within the grace", incident_id, stage, len(contained), len(activity))
    return result.model_dump(mode="json") | {"minted": [c.model_dump(mode="json") for c in minted]}
