"""RECOVERY: a replacement key for the owner, restored logins and trust, deny policies off."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.phase import run_phase
from keyresponse.model import InvestigationRecord


@flow(name="recovery", flow_run_name="recovery:{incident_id}")
def recovery(incident_id: str, investigation: InvestigationRecord, dry_run: bool = False, approval: bool = True,
           only: list[str] | None = None) -> dict[str, Any]:
    """Plan, wait for approval (unless `approval` is False), apply and verify the recovery steps."""
    return run_phase("recovery", incident_id, investigation, dry_run=dry_run, approval=approval, only=only)
