"""ERADICATION: remove what the attacker left — keys, users, backdoors, functions, instances."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.phase import run_phase
from keyresponse.model import InvestigationRecord


@flow(name="eradication", flow_run_name="eradication:{incident_id}")
def eradication(incident_id: str, investigation: InvestigationRecord, dry_run: bool = False, approval: bool = True,
           only: list[str] | None = None) -> dict[str, Any]:
    """Plan, wait for approval (unless `approval` is False), apply and verify the eradication steps."""
    return run_phase("eradication", incident_id, investigation, dry_run=dry_run, approval=approval, only=only)
