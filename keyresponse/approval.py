"""Manual approval of a response phase: a Prefect pause with typed input, shown as a form in the UI.

The approver, the decision and the reason are all required and have no defaults, so an empty
resume is rejected by the server and can never approve. The plan is shown above the form as a
Markdown table. A timeout never approves: the caller escalates and stops safely.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field


class Approval(RunInput):
    """What a responder answers in the Resume dialog."""

    approver: str = Field(min_length=1, max_length=200, description="Your name or e-mail.")
    decision: Literal["approve", "deny"] = Field(description="approve applies the plan; deny changes nothing.")
    reason: str = Field(min_length=1, max_length=2000, description="Why (ticket, context). Goes into the report.")


def _cell(value: Any) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("`", "'")


def plan_markdown(phase: str, incident_id: str, plan: dict[str, Any]) -> str:
    """The approval form's description: what will change, as a table."""
    rows = [c for c in plan["changes"] if not c["done"]]
    lines = [f"### {phase.capitalize()} of incident `{incident_id}`: approve {len(rows)} change(s)?", "",
             "| # | action | target | what will happen |", "|---|---|---|---|"]
    lines += [f"| {i} | {_cell(c['action'])} | {_cell(c.get('label', c['target']))} | {_cell(c['summary'])} |"
              for i, c in enumerate(rows, 1)]
    done = [c for c in plan["changes"] if c["done"]]
    if done:
        lines += ["", f"Already done, left alone: {len(done)} step(s)."]
    for note in plan.get("notes", []):
        lines += ["", f"> Needs a human: {_cell(note)}"]
    lines += ["", "Deny to change nothing. The decision, your name and your reason go into the incident report."]
    return "\n".join(lines)


def request_approval(phase: str, incident_id: str, plan: dict[str, Any], *, timeout: int,
                     poll_interval: int) -> dict[str, Any]:
    """Pause the flow run until someone answers; returns {approver, decision, reason, at, phase}.

    On timeout the decision is "timeout" (never "approve").
    """
    description = plan_markdown(phase, incident_id, plan)
    try:
        answer = pause_flow_run(wait_for_input=Approval.with_initial_data(description=description),
                                timeout=timeout, poll_interval=poll_interval, key=f"approve-{phase}")
    except FlowPauseTimeout:
        return {"phase": phase, "approver": None, "decision": "timeout", "at": _now(),
                "reason": f"no answer within {timeout} s"}
    return {"phase": phase, "approver": answer.approver, "decision": answer.decision, "reason": answer.reason,
            "at": _now()}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
