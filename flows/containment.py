"""CONTAINMENT: stop the attacker — deactivate keys, revoke sessions, lock consoles, tag."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.phase import run_phase
from keyresponse.model import InvestigationRecord


@flow(name="containment", flow_run_name="containment:{incident_id}")
def containment(incident_id: str, investigation: InvestigationRecord, dry_run: bool = False, approval: bool = True,
           only: list[str] | None = None) -> dict[str, Any]:
    """Plan, wait for approval (unless `approval` is False), apply and verify the containment steps."""
    return run_phase("containment", incident_id, investigation, dry_run=dry_run, approval=approval, only=only)
