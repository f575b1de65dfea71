"""Prefect tasks that run a response phase's actions: plan (read-only), apply, verify.

Writes are never retried blindly: `apply_phase` has no Prefect retries (botocore already retries
throttling and 5xx with backoff), and a rerun converges because every action is check-then-act.
"""

from __future__ import annotations

from typing import Any

import boto3
from prefect import task
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from keyresponse.aws import session_for_account
from tasks.actions import ActionContext, Clients, Step, apply_steps, plan_steps
from tasks.plan import Phase, plan_response


def context(incident_id: str, account_id: str | None, *, dry_run: bool) -> ActionContext:
    """An action context in the key's account (a member account is reached through the response role)."""
    session: boto3.Session = session_for_account(account_id)
    run_id = flow_run.get_id()
    return ActionContext.create(incident_id, dry_run=dry_run, clients=Clients(session),
                                flow_run_id=str(run_id) if run_id else None)


def _steps(investigation: dict[str, Any], phase: Phase, ctx: ActionContext,
           only: list[str] | None) -> tuple[list[Step], list[str]]:
    plan = plan_response(investigation, phase, ledger_entries=ctx.ledger.entries())
    steps = [s for s in plan.steps if only is None or s.action.name in only]
    return steps, plan.notes


@task(name="plan_phase", task_run_name="plan_{phase}:{incident_id}", retries=2, retry_delay_seconds=[1, 5])
def plan_phase(incident_id: str, investigation: dict[str, Any], phase: Phase,
               only: list[str] | None = None) -> dict[str, Any]:
    """The phase's changes, read-only: what each step would do, and what is already done."""
    ctx = context(incident_id, investigation.get("account_id"), dry_run=True)
    steps, notes = _steps(investigation, phase, ctx, only)
    changes = []
    for step, change in plan_steps(ctx, steps):
        changes.append({"action": step.action.name, "target": step.target.model_dump(mode="json"),
                        "label": step.target.label,
                        "summary": change.description if change else "already done",
                        "requires_approval": step.action.requires_approval, "done": change is None})
    get_run_logger().info("%s plan: %d step(s), %d to change", phase, len(changes),
                          sum(not c["done"] for c in changes))
    return {"phase": phase, "changes": changes, "notes": notes}


@task(name="apply_phase", task_run_name="apply_{phase}:{incident_id}")
def apply_phase(incident_id: str, investigation: dict[str, Any], phase: Phase,
                only: list[str] | None = None) -> list[dict[str, Any]]:
    """Apply and verify every step (guardrails first, evidence before the first write, ledger after each)."""
    ctx = context(incident_id, investigation.get("account_id"), dry_run=False)
    steps, _ = _steps(investigation, phase, ctx, only)
    log = get_run_logger()

    def progress(step: Step, entry: Any) -> None:
        log.info("%s %s", "applied" if entry else "already done", step.label)

    written = apply_steps(ctx, steps, investigation=investigation, after_each=progress)
    return [entry.model_dump(mode="json") for entry in written]


@task(name="verify_phase", task_run_name="verify_{phase}:{incident_id}", retries=2, retry_delay_seconds=[1, 5])
def verify_phase(incident_id: str, investigation: dict[str, Any], phase: Phase,
                 only: list[str] | None = None) -> int:
    """Re-read AWS for every step of the phase; raises VerificationFailed if a change did not take."""
    ctx = context(incident_id, investigation.get("account_id"), dry_run=True)
    steps, _ = _steps(investigation, phase, ctx, only)
    for step in steps:
        step.action.verify(ctx, step.target)
    return len(steps)


@task(name="first_response", task_run_name="first_response:{incident_id}")
def first_response(incident_id: str) -> dict[str, Any] | None:
    """What the alert receiver already did about the key (see `keyresponse.first_response`), once it is done.

    None when the receiver did not act (low-confidence alert, automatic containment off, or the run
    was not started by the receiver)."""
    from keyresponse import first_response as first

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
