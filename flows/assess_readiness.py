"""Readiness for the next incident, and (with approval) the hardening that closes the gaps.

    assess_account_readiness ─► artifacts (checks, plan, CloudFormation)
        ─► [harden only] approval pause ─► apply_hardening (ledger: undo with `undo_incident`)
        ─► assess again ─► artifacts

`keyresponse readiness` runs the same library functions without a Prefect server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from pydantic import BaseModel, Field

from keyresponse import markdown as md
from keyresponse.approval import approval_form
from keyresponse.readiness import Check, ReadinessOptions, readiness_for_report, render_markdown
from keyresponse.readiness.model import DATA_EVENT_TYPES
from keyresponse.settings import get_settings
from tasks.hardening._plan import HardeningPlan, cloudformation_template, plan_hardening
from tasks.hardening._tasks import apply_hardening, assess_account_readiness


class ReadinessOutcome(BaseModel):
    """What the flow returns: the checks, the plan, and what hardening did."""

    checks: list[Check]
    plan: list[str] = Field(default_factory=list, description="Step labels of the hardening plan.")
    manual: list[str] = Field(default_factory=list)
    cloudformation: dict[str, Any] = Field(default_factory=dict)
    approval: dict[str, str] | None = None
    incident_id: str | None = None
    applied: list[dict[str, Any]] = Field(default_factory=list)
    checks_after: list[Check] = Field(default_factory=list)
    recommendations: list[dict[str, str]] = Field(default_factory=list)


def _plan_markdown(plan: HardeningPlan) -> str:
    """The Resume dialog's description; targets name the account's trails, buckets and rules (keyresponse.markdown)."""
    rows = [[md.code(s.action.name), md.code(s.target.label), "yes" if s.action.requires_approval else "",
             s.action.undo_unsupported_reason or "yes"] for s in plan.steps]
    manual = [f"- {md.text(note)}" for note in plan.manual] or ["- nothing"]
    return "\n".join([f"### Apply {len(plan.steps)} hardening step(s)?", "",
                      md.table(["action", "target", "needs care", "undo"], rows), "",
                      "Not automatic:", *manual])


@flow(name="assess_readiness", description="Is the account ready for the next exposed key? Harden with approval.")
def assess_readiness(
    regions: list[str] | None = None,
    webhook_url: str = "https://keyresponse.example.com",
    trail_bucket: str | None = None,
    data_events: list[str] | None = None,
    harden: bool = False,
    approval_timeout_s: int = 3600,
    incident_id: str | None = None,
) -> ReadinessOutcome:
    """Check GuardDuty, CloudTrail, Object Lock, the Athena table, the alert routes, the responder role, the
    root user and long-lived keys. With `harden`, a person approves the plan, it is applied and re-checked.
    `data_events` defaults to S3 objects and Lambda functions; an empty list means none are wanted."""
    logger = get_run_logger()
    settings = get_settings()
    options = ReadinessOptions(regions=regions, webhook_url=webhook_url, trail_bucket=trail_bucket,
                               data_events=list(DATA_EVENT_TYPES if data_events is None else data_events))
    checks = assess_account_readiness(settings, options)
    create_markdown_artifact(key="readiness-checks", markdown=render_markdown(checks),
                             description="Readiness checks")
    plan = plan_hardening(checks, options, settings)
    template = cloudformation_template(plan, options, settings)
    outcome = ReadinessOutcome(checks=checks, plan=[s.label for s in plan.steps], manual=plan.manual,
                               cloudformation=template, recommendations=readiness_for_report(checks))
    create_table_artifact(key="readiness-plan",
                          table=md.table_cells([{"step": label} for label in outcome.plan]) or [{"step": "none"}],
                          description="Hardening plan")
    create_markdown_artifact(key="readiness-cloudformation",
                             markdown=md.code_block(json.dumps(template, indent=2), "json"),
                             description="The hardening plan as a CloudFormation template")
    logger.info("%d check(s): %d failing; plan of %d step(s)", len(checks),
                sum(c.status == "fail" for c in checks), len(plan.steps))
    if not harden or not plan.steps:
        return outcome
    try:
        approval = pause_flow_run(wait_for_input=approval_form([]).with_initial_data(
            description=_plan_markdown(plan)), timeout=approval_timeout_s, poll_interval=settings.approval_poll_seconds)
    except FlowPauseTimeout:
        logger.warning("no approval within %d s: nothing was changed", approval_timeout_s)
        return outcome
    outcome.approval = approval.model_dump(include={"approver", "decision", "reason"})
    if approval.decision != "approve":
        logger.info("hardening denied by %s", approval.approver)
        return outcome
    outcome.incident_id = incident_id or f"hardening-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    flow_run = getattr(get_run_context(), "flow_run", None)
    flow_run_id = str(flow_run.id) if flow_run is not None else None
    outcome.applied = apply_hardening(plan, outcome.incident_id, settings, flow_run_id)
    outcome.checks_after = assess_account_readiness(settings, options)
    outcome.recommendations = readiness_for_report(outcome.checks_after)
    create_markdown_artifact(key="readiness-checks-after", markdown=render_markdown(outcome.checks_after),
                             description=f"Readiness after hardening ({md.text(outcome.incident_id)})")
    return outcome
