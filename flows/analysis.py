"""ANALYSIS (NIST 800-61 detection & analysis): validate → scope → impact."""

from __future__ import annotations

from typing import Any

from prefect import flow

from keyresponse.investigation import default_window
from tasks.analysis import assess_impact, scope_key, validate_key_task


@flow(name="analysis", flow_run_name="analysis:{access_key_id}")
def analysis(access_key_id: str, logs: str | None = None, start: str | None = None, end: str | None = None,
             known_ips: list[str] | None = None, attacker_ips: list[str] | None = None,
             facts: dict[str, Any] | None = None, alert_source: str | None = None,
             alert_payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full investigation of one key (the investigation JSON, plus facts and events)."""
    from keyresponse.settings import get_settings

    source = logs or get_settings().cloudtrail_logs
    window = default_window(source)
    span = {"start": start or window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end or window.end.strftime("%Y-%m-%dT%H:%M:%SZ")}
    facts = facts or validate_key_task(access_key_id)
    scope = scope_key(access_key_id, span, source, known_ips, attacker_ips)
    return assess_impact(access_key_id, scope, span, source, facts, alert_source, alert_payload)
