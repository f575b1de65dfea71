"""Prefect tasks of the `assess_readiness` flow (the CLI calls the same library functions directly)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.tasks import exponential_backoff

from keyresponse.readiness import Check, ReadinessOptions, assess
from keyresponse.retry import retry_on_transient
from keyresponse.settings import Settings
from tasks.actions import ActionContext, Clients, apply_steps
from tasks.hardening._plan import HardeningPlan


@task(name="assess_account_readiness", retries=2, retry_delay_seconds=exponential_backoff(2),
      retry_condition_fn=retry_on_transient)
def assess_account_readiness(settings: Settings, options: ReadinessOptions) -> list[Check]:
    """Read-only: every readiness check of the caller's account (retried on throttling only)."""
    return assess(Clients(), settings, options)


@task(name="apply_hardening", task_run_name="apply_hardening:{incident_id}")
def apply_hardening(plan: HardeningPlan, incident_id: str, settings: Settings,
                    flow_run_id: str | None = None) -> list[dict[str, Any]]:
    """Apply and verify the plan's steps (never retried: writes); return the ledger entries written."""
    ctx = ActionContext.create(incident_id, dry_run=False, settings=settings, flow_run_id=flow_run_id)
    return [entry.model_dump(mode="json") for entry in apply_steps(ctx, plan.steps)]
