"""Approvals that wait too long are escalated, again and again; they never end the response.

A deployment run waiting for an approval is suspended (`keyresponse.approval`): no process of it
runs, so no timer of its own can fire. `keyresponse serve` looks every `every_s` seconds at the
response runs waiting for an answer; each time a run has waited another
`KEYRESPONSE_APPROVAL_TIMEOUT_SECONDS` (one hour by default) for the same question, an escalation
goes out to Slack/SNS (`keyresponse.notifications`) with the link to the run. The run keeps
waiting: an incident nobody answered is an incident still open, and the key the receiver contained
stays contained. Each escalation is sent once, whichever `keyresponse serve` sees it first: a file
named after the run, the question and the count is created exclusively in the incident's folder
(`escalations/`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keyresponse.approval import phase_of
from keyresponse.files import write_atomic
from keyresponse.ledger import validate_incident_id
from keyresponse.notifications import IncidentMessage, send
from keyresponse.settings import Settings, get_settings

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

FLOW = "respond-to-exposed-key"


def escalate(client: SyncPrefectClient, *, settings: Settings | None = None, now: datetime | None = None) -> list[str]:
    """Send the escalations due; returns the incident ids escalated."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    every = max(int(settings.approval_timeout_seconds), 1)
    waiting = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW])),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
    sent: list[str] = []
    for run in waiting:
        incident = (run.parameters or {}).get("incident_id")
        if not incident or run.state is None or run.state.timestamp is None:
            continue
        waited = (now - run.state.timestamp).total_seconds()
        count = int(waited // every)
        if count < 1:
            continue
        key = str(getattr(run.state.state_details, "pause_key", None) or "approval")
        marker = (settings.home / "incidents" / validate_incident_id(str(incident)) / "escalations"
                  / f"{run.id}-{key}-{count}.json")
        if not write_atomic(marker, b"{}", exclusive=True):
            continue  # sent already
        link = f"{settings.ui_url.rstrip('/')}/runs/flow-run/{run.id}" if settings.ui_url else None
        phase = phase_of(key) or "the response"
        send(IncidentMessage(str(incident), "escalation", f"[{incident}] {phase} waits for approval",
                             f"No answer for {int(waited // 60)} min ({count} escalation(s)). The response waits; "
                             "nothing more changes until someone decides.", link), settings)
        sent.append(str(incident))
    return sent
