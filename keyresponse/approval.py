"""Manual approval of a response phase: a Prefect pause with typed input, shown as a form in the UI.

The approver, the decision and the reason are all required and have no defaults, so an empty
resume is rejected by the server and can never approve. The plan is shown above the form as a
Markdown table. A timeout never approves: the caller escalates and stops safely.

How a run waits. A deployment run (`keyresponse serve`, a worker) is *suspended*: its process
exits, nothing holds a slot or memory, and the wait survives a restart of the runner, the worker or
the Prefect server (the question lives in the server's database). Once answered, Prefect runs the
flow again from the top; the response's journal (`keyresponse.journal`) skips what was finished and
the same pause key returns the answer given. A suspended approval does not expire: a response
waiting for a human must never end on its own. A run without a deployment (a script, a test) has
no one to run it again, so it pauses in-process, with `timeout`.

Credentials the investigation could not attribute (`uncertain_credentials`) are never in the plan.
When there are some, the form offers them as a separate multi-select, `also_contain`, empty unless
the approver picks them, with each one's reasons in the description: a human decides, one by one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from prefect.exceptions import FlowPauseTimeout, PrefectHTTPStatusError
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field, create_model

from keyresponse.guardrails import ForeignPrincipal
from keyresponse.markdown import code, table, text
from keyresponse.model import CredentialRecord, InvestigationRecord, UncertainCredential


class Approval(RunInput):
    """What a responder answers in the Resume dialog."""

    approver: str = Field(min_length=1, max_length=200, description="Your name or e-mail.")
    decision: Literal["approve", "deny"] = Field(description="approve applies the plan; deny changes nothing.")
    reason: str = Field(min_length=1, max_length=2000, description="Why (ticket, context). Goes into the report.")


def approval_form(offered: Sequence[str]) -> type[Approval]:
    """The form: with uncertain credentials on offer, a multi-select of exactly those, empty by default."""
    if not offered:
        return Approval
    choice: Any = Literal.__getitem__(tuple(offered))  # a Literal of the ids known only at run time
    return create_model(
        "ApprovalWithUncertain", __base__=Approval,
        also_contain=(list[choice], Field(default_factory=list, description=(
            "Uncertain credentials to contain as well (none by default). Pick only those you judge the "
            "attacker's; their reasons are in the table above."))))


class PlanChange(BaseModel):
    """One step of a plan as the approver sees it: `key` names it in an approval (`action:label`), and
    `(key, summary)` is what an approval binds (`tasks.response.plan_digest`), so it is the hash.

    `target` is the step's target as data (`tasks.actions.Target.model_dump(mode="json")`); `refused`,
    the guardrails' reason, only on a refused step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str
    target: dict[str, Any] | str
    label: str | None = None
    key: str | None = None
    summary: str
    requires_approval: bool = True
    done: bool
    refused: str | None = None

    def __hash__(self) -> int:
        return hash((self.key, self.summary))

    def data(self) -> dict[str, Any]:
        """As stored (the incident record, the journal, the approval's evidence): the fields it was given."""
        return self.model_dump(mode="json", exclude_unset=True)


class PlanView(BaseModel):
    """A phase's plan as an approval shows it: the changes, what needs a human (`notes`), the attacker's
    own principals, the uncertain credentials offered beside the plan, why it is asked (`why`) and the
    last line of the form (`closing`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phase: str
    changes: tuple[PlanChange, ...]
    notes: tuple[str, ...] = ()
    attacker_infrastructure: tuple[ForeignPrincipal, ...] = ()
    uncertain_credentials: tuple[UncertainCredential, ...] = ()
    why: str | None = None
    closing: str | None = None

    def pending(self) -> list[PlanChange]:
        """The changes still to make (not done, not refused)."""
        return [c for c in self.changes if not c.done]

    def data(self) -> dict[str, Any]:
        """As stored in the incident record and returned by the phase: the fields it was given."""
        return self.model_dump(mode="json", exclude_unset=True)


def plan_markdown(phase: str, incident_id: str, plan: PlanView) -> str:
    """The approval form's description: what will change, as a table. Every string of the plan may be
    the attacker's (a key pair's or a role's name, a user agent): each goes through keyresponse.markdown."""
    rows = plan.pending()
    lines = [f"### {text(phase.capitalize())} of incident {code(incident_id)}: approve {len(rows)} change(s)?", ""]
    if plan.why:
        lines += [f"> {text(plan.why)}", ""]
    lines += [table(["#", "action", "target", "what will happen"],
                    [[str(i), c.action, c.label if c.label is not None else c.target, c.summary]
                     for i, c in enumerate(rows, 1)]), ""]
    done = [c for c in plan.changes if c.done and not c.refused]
    if done:
        lines += [f"Already done, left alone: {len(done)} step(s).", ""]
    refused = [c for c in plan.changes if c.refused]
    if refused:
        lines += [f"**Refused by the guardrails, left out of this plan: {len(refused)} step(s).** Approving "
                  "never applies them; each is below with its reason, for a human to handle by hand.", ""]
    for note in plan.notes:
        lines += [f"> Needs a human: {text(note)}", ""]
    offered = plan.uncertain_credentials
    if offered:
        lines += [f"**Not in this plan: {len(offered)} uncertain credential(s).** The evidence cannot tell the "
                  "owner's from the attacker's. Add any of them with *also contain*:", "",
                  table(["credential", "kind", "created by", "why uncertain"],
                        [[c.access_key_id, c.kind or "", c.created_by_event or "", "; ".join(c.reasons)]
                         for c in offered]), ""]
    lines += [text(plan.closing or "Deny to change nothing. The decision, your name and your reason go into "
                   "the incident report.")]
    return "\n".join(lines)


def request_approval(phase: str, incident_id: str, plan: PlanView, *, timeout: int,
                     poll_interval: int, key: str | None = None) -> dict[str, Any]:
    """Pause the flow run until someone answers; returns {approver, decision, reason, at, phase,
    also_contain} (`also_contain`: the uncertain credentials the approver added; `plan` offers them in
    its `uncertain_credentials`).

    On timeout (in-process pauses only) the decision is "timeout" (never "approve"). `key` names the
    pause (one per question: Prefect answers a second pause with the same key from the first one's
    input, which is how a resumed suspension gets its answer).
    """
    description = plan_markdown(phase, incident_id, plan)
    offered = [c.access_key_id for c in plan.uncertain_credentials]
    form = approval_form(offered).with_initial_data(description=description)
    try:
        if _deployment_run():
            answer = _suspend(form, key or f"approve-{phase}")
        else:
            answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=poll_interval,
                                    key=key or f"approve-{phase}")
    except FlowPauseTimeout:
        return {"phase": phase, "approver": None, "decision": "timeout", "at": _now(),
                "reason": f"no answer within {timeout} s", "also_contain": []}
    chosen = _chosen(answer, offered) if answer.decision == "approve" else []
    return {"phase": phase, "approver": answer.approver, "decision": answer.decision, "reason": answer.reason,
            "at": _now(), "also_contain": chosen}


def _deployment_run() -> bool:
    """Whether the flow run this code runs in is a deployment's (not a subflow, script or test)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.deployment_id)


def _suspend(form: type[Approval], key: str) -> Approval:
    """Suspend the run until `form` is answered, or return the answer a resumed run was given.

    A suspension killed between its state and its form (the key is spent, no answer can exist) is
    asked again under the next key; a replay walks the same keys to the same answer."""
    from prefect.exceptions import ObjectNotFound
    from pydantic import ValidationError

    for again in range(4):
        try:
            answer = suspend_flow_run(wait_for_input=form, key=key if again == 0 else f"{key}-again{again}")
        except (ObjectNotFound, ValidationError):  # spent key, no answer stored under it
            continue
        if answer is None:
            raise RuntimeError(f"the suspension {key} returned no answer")
        return answer
    raise RuntimeError(f"the approval {key} could not be asked: its pause keys are spent without an answer")


def _chosen(answer: Approval, offered: Sequence[str]) -> list[str]:
    picked = getattr(answer, "also_contain", None) or []
    return [key for key in offered if key in set(picked)]  # the form allows only these; keep their order


def with_uncertain(investigation: InvestigationRecord, chosen: Sequence[str]) -> InvestigationRecord:
    """A copy of the investigation with the approver's picks among its uncertain credentials moved into
    `credentials` (without their `reasons`)."""
    picked = [c for c in investigation.uncertain_credentials if c.access_key_id in set(chosen)]
    rest = [c for c in investigation.uncertain_credentials if c.access_key_id not in set(chosen)]
    added = [CredentialRecord.model_validate(c.model_dump(exclude={"reasons"}, exclude_unset=True)) for c in picked]
    return investigation.model_copy(update={"credentials": [*investigation.credentials, *added],
                                            "uncertain_credentials": rest})


def pause_key(phase: str, round_: int) -> str:
    """The pause key of one approval question: the same question gets the same answer back."""
    return f"approve-{phase}-{round_}"


def phase_of(key: str | None) -> str | None:
    """The phase a pause key (`pause_key`) asks about; None for any other pause."""
    parts = str(key or "").split("-")
    return parts[1] if len(parts) >= 3 and parts[0] == "approve" else None


def paused_phase(run: Any) -> str | None:
    """The phase a paused run (a Prefect client's flow run) waits on an approval of."""
    details = run.state.state_details if run.state else None
    return phase_of(getattr(details, "pause_key", None))


def paused_runs(client: Any, *, within: UUID | str | None = None) -> list[Any]:
    """The flow runs waiting for an answer; with `within`, only that run and its subflows (the response
    run pauses itself; a phase flow run on its own may be its subflow), never another incident's."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    paused = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    if within is None:
        return list(client.read_flow_runs(flow_run_filter=FlowRunFilter(state=paused)))
    root = UUID(str(within))
    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=paused, id=FlowRunFilterId(any_=[root])))
    runs += client.read_flow_runs(flow_run_filter=FlowRunFilter(
        state=paused, parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[root])))
    return list(runs)


def answer_pause(client: Any, run_id: UUID | str, answer: dict[str, str], *, patience_s: float = 120.0) -> bool:
    """Answer a paused run's approval form, as the UI's Resume dialog does.

    Returns True when this answer resumed the run, and False when the run was no longer paused
    (answered elsewhere, expired, cancelled). An answer the form refuses raises ValueError with the
    server's reason.

    Two passing refusals are retried for up to `patience_s`:
    - "schema not found": `pause_flow_run` proposes the Paused state first and saves the form's
      schema just after.
    - 503: a SQLite Prefect server answers SQLITE_BUSY when a resume's read and write straddle
      another writer's commit. With nine responses running at once, this outlasted the client's
      own six tries (2 to 32 s apart) in CI, so these tries are 0.2 to 1 s apart instead.
    """
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    deadline = time.monotonic() + patience_s
    while True:
        try:
            with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
                result = client.resume_flow_run(UUID(str(run_id)), run_input=answer)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.2, 1.0))  # jitter
            continue
        if result.status == SetStateStatus.ACCEPT:
            return True
        if result.status == SetStateStatus.ABORT or (result.state is not None and result.state.is_failed()):
            return False  # not paused any more, or its pause had expired (Prefect fails the run)
        reason = str(getattr(result.details, "reason", ""))
        if "schema not found" not in reason or time.monotonic() > deadline:
            raise ValueError(f"the answer to flow run {run_id} was refused: {reason}")
        time.sleep(0.2)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
