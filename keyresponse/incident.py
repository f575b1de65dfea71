"""The incident record: everything one response knew and did, as one JSON document.

The parent flow writes it to the evidence store as `incident.json` at the end of every run, and
`keyresponse.report` renders it (Markdown artifact, one HTML file, the same JSON as data).

    incident = Incident.model_validate_json(path.read_text())
    incident.applied()          # ledger entries that changed AWS, oldest first

The shape (every field is documented on the models below):

    {"incident_id": "ir-…",
     "status": "contained|eradicated|recovered|closed|denied|not_ours|dry_run|timed_out|failed",
     "dry_run": false,
     "alert": {"source", "alert_id", "access_key_id", "account_id", "principal", "observed_at",
               "severity", "title"} | null,
     "investigation": Investigation.to_full_json() (+ optional `exposure`, `tools_observed`,
                      `intent`, `attribution`, `damage` from keyresponse.intel),
     "timeline": {"first_malicious_at", "detected_at", "alert_received_at", "analysis_completed_at",
                  "contained_at", "eradicated_at", "recovered_at", "closed_at"}   (each may be null),
     "plans": {"containment": [{"action", "target", "summary", "requires_approval"}],
               "eradication": […], "recovery": […]},
     "ledger": [LedgerEntry …],
     "approvals": [{"phase", "approver", "decision", "reason", "at", "also_contain", "plan_sha256"}],
     "events": [rows of queries/key_events.sql: the attacker's calls],
     "readiness": [{"check", "status", "evidence", "fix"}]   (optional),
     "flow_run_id": "…" | null, "ui_url": "…" | null,
     "left_in_place": {"changes": [{"entry_id", "action", "target", "label", "description", "state",
                                    "applied_at", "undo_supported", "reason"}],
                       "undo": {"dry_run": "keyresponse undo ID", "apply": "keyresponse undo ID --apply",
                                "deployment": "undo-incident/undo-incident", "parameters": {…}}} | null,
     "containment_checks": [{"stage", "checked_at", "credentials", "activity": [ActivityAfter …],
                             "breaches": [{"kind", "subject", "detail"}], "round"}]   (optional)}

`containment_checks` (optional) lists the post-containment checks (`ContainmentCheck`): what each
contained credential still did after its containment, and any breach that reopened the incident.

`left_in_place` lists every change still in effect when the run ended (none undone or ended by a
later change: `tasks.actions.left_in_place`), so a denied or stopped incident says what it left
behind, and how to undo it.

`investigation` stays a plain dict: its contract is docs/architecture.md's (checked by
`keyresponse.investigation.CONTRACT_FIELDS`), and the optional intel answers are read when
present. Times are ISO-8601 strings in UTC with a `Z`, as everywhere else in keyresponse.

`make_incident(...)` builds a small valid record for tests; every field can be overridden.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keyresponse.investigation import CONTRACT_FIELDS
from keyresponse.ledger import LedgerEntry, validate_incident_id
from keyresponse.model import InvestigationRecord

Status = Literal["contained", "eradicated", "recovered", "closed", "denied", "not_ours", "dry_run",
                 "timed_out", "failed"]
Phase = Literal["containment", "eradication", "recovery"]
PHASES: tuple[Phase, ...] = ("containment", "eradication", "recovery")
#: When a post-containment check runs (keyresponse.containment_check).
CheckStage = Literal["after_containment", "after_delivery_delay", "before_post_incident"]
#: The optional answers keyresponse.intel adds to the investigation.
INTEL_FIELDS = ("exposure", "tools_observed", "intent", "attribution", "damage")


def parse_time(value: str) -> datetime:
    """An ISO-8601 string (with `Z` or an offset) as an aware UTC datetime."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    parse_time(value)  # raises ValueError on a malformed time, which pydantic reports
    return value


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertSummary(_Record):
    """The alert that opened the incident (keyresponse.alerts.Alert without its raw payload)."""

    source: str
    alert_id: str
    access_key_id: str | None = None
    account_id: str | None = None
    principal: str | None = None
    observed_at: str
    severity: str
    title: str


class Timeline(_Record):
    """The NIST milestones. `detected_at` is when a detector first saw it (the alert's observed
    time); `alert_received_at` when keyresponse got the alert (the receiver's spool time, so never
    after the receiver's own first containment; the run's start when no receiver started it); the
    rest when each phase finished."""

    first_malicious_at: str | None = None
    detected_at: str | None = None
    alert_received_at: str | None = None
    analysis_completed_at: str | None = None
    contained_at: str | None = None
    eradicated_at: str | None = None
    recovered_at: str | None = None
    closed_at: str | None = None

    @field_validator("*")
    @classmethod
    def _times(cls, value: str | None) -> str | None:
        return _iso_or_none(value)


class PlannedStep(_Record):
    """One step of a phase's plan, as the planner proposed it (applied or not). A step the guardrails
    refused has the reason as its summary, after `keyresponse.guardrails.REFUSAL_PREFIX`."""

    action: str
    target: dict[str, Any]
    summary: str
    requires_approval: bool = False

    @property
    def refusal(self) -> str | None:
        """Why the guardrails refused this step, or None when they did not."""
        from keyresponse.guardrails import REFUSAL_PREFIX

        return self.summary[len(REFUSAL_PREFIX):] if self.summary.startswith(REFUSAL_PREFIX) else None


class Plans(_Record):
    containment: list[PlannedStep] = []
    eradication: list[PlannedStep] = []
    recovery: list[PlannedStep] = []

    def steps(self) -> list[tuple[Phase, PlannedStep]]:
        return [(phase, step) for phase in PHASES for step in getattr(self, phase)]


class Approval(_Record):
    """A human decision at an approval pause."""

    phase: Phase
    approver: str
    decision: Literal["approve", "deny"]
    reason: str = ""
    at: str
    #: uncertain credentials the approver added to the plan (containment only)
    also_contain: list[str] = []
    #: SHA-256 of the changes this decision approved, as stored in the evidence store (approve only)
    plan_sha256: str | None = None

    @field_validator("at")
    @classmethod
    def _time(cls, value: str) -> str:
        parse_time(value)
        return value


class ReadinessCheck(_Record):
    """One preparation check (GuardDuty on, data events on, …) and how to fix it when it fails."""

    check: str
    status: Literal["pass", "fail", "warn", "unknown", "not_verifiable"]
    evidence: str = ""
    fix: str = ""


class InPlaceChange(_Record):
    """One applied change still in effect when the response ended (a ledger entry)."""

    entry_id: str
    action: str
    target: dict[str, Any]
    label: str
    description: str
    state: dict[str, Any] = Field(description="What the change left: the entry's after-state.")
    applied_at: str
    undo_supported: bool
    reason: str | None = Field(default=None, description="Why it cannot be undone, when it cannot.")


class UndoHow(_Record):
    """How to undo an incident's changes: the CLI, or the `undo-incident` Prefect deployment."""

    dry_run: str
    apply: str
    deployment: str
    parameters: dict[str, Any]


class LeftInPlace(_Record):
    """Every change the response left in effect (after a denial, a timeout, a failure, or the end)."""

    changes: list[InPlaceChange]
    undo: UndoHow


class ActivityAfter(_Record):
    """What a contained credential still did after it was contained: one row of
    `queries/key_activity_after.sql` (calls grouped by source, name, address and error)."""

    access_key_id: str
    event_source: str | None = None
    event_name: str | None = None
    source_ip: str | None = None
    error_code: str | None = Field(default=None, description="None when the calls succeeded.")
    call_count: int
    first_seen_at: str
    last_seen_at: str
    contained_at: str = Field(description="When the response last contained the credential (the ledger).")
    breach: bool = Field(description="Successful calls after contained_at and its grace: containment did not hold.")


class Breach(_Record):
    """One sign that containment did not hold: successful calls by a contained credential
    (`activity`), a containment change AWS no longer shows (`reverted`: a deactivated key Active
    again), or a credential minted in the gap the analysis could not see (`minted`)."""

    kind: Literal["activity", "reverted", "minted"]
    subject: str = Field(description="The credential or the change's target.")
    detail: str


class ContainmentCheck(_Record):
    """One post-containment check (`keyresponse.containment_check`): right after containment, after
    CloudTrail's delivery delay, and before post-incident. Any breach reopens the incident: a new
    containment approval round asks for what was found (`round`: that round's outcome)."""

    stage: CheckStage
    checked_at: str
    credentials: list[str] = Field(description="The contained credentials whose activity was read.")
    activity: list[ActivityAfter] = []
    breaches: list[Breach] = []
    round: Literal["applied", "nothing_to_do", "denied", "timed_out", "dry_run"] | None = None

    @property
    def reopened(self) -> bool:
        return bool(self.breaches)


class Incident(BaseModel):
    """The incident record (module docstring). `report` is output only: `write_report` adds the
    figures the report shows, and rendering ignores and recomputes it."""

    model_config = ConfigDict(extra="forbid")

    incident_id: str
    status: Status
    dry_run: bool = False
    alert: AlertSummary | None = None
    investigation: dict[str, Any]
    timeline: Timeline = Timeline()
    plans: Plans = Plans()
    ledger: list[LedgerEntry] = []
    approvals: list[Approval] = []
    events: list[dict[str, Any]] = []
    readiness: list[ReadinessCheck] | None = None
    flow_run_id: str | None = None
    ui_url: str | None = None
    left_in_place: LeftInPlace | None = None
    containment_checks: list[ContainmentCheck] = []
    report: dict[str, Any] | None = Field(default=None, description="Written by keyresponse.report; ignored on input.")

    @field_validator("incident_id")
    @classmethod
    def _incident_id(cls, value: str) -> str:
        return validate_incident_id(value)

    @field_validator("investigation")
    @classmethod
    def _investigation(cls, value: dict[str, Any]) -> dict[str, Any]:
        missing = [name for name in CONTRACT_FIELDS if name not in value]
        if missing:
            raise ValueError(f"the investigation lacks {missing} (docs/architecture.md, 'Investigation result')")
        InvestigationRecord.model_validate(value)  # its schema (docs/schemas/investigation.schema.json)
        return value

    def applied(self) -> list[LedgerEntry]:
        """Ledger entries that changed AWS (not dry-run), oldest first, undos included."""
        return [entry for entry in self.ledger if not entry.dry_run]

    def denial(self) -> Approval | None:
        """The first `deny` decision, if a human refused a phase."""
        return next((a for a in self.approvals if a.decision == "deny"), None)

    def reopenings(self) -> list[ContainmentCheck]:
        """The post-containment checks that found containment did not hold, in order."""
        return [check for check in self.containment_checks if check.reopened]

    def record(self) -> dict[str, Any]:
        """The record as JSON data, without the output-only `report` (nor `left_in_place` or
        `containment_checks` when there is nothing, so a record written before those fields existed
        reads back unchanged)."""
        empty = {name for name in ("left_in_place", "containment_checks") if not getattr(self, name)}
        return self.model_dump(mode="json", exclude={"report"} | empty)


# -- a builder for tests --------------------------------------------------------------------------

_KEY = "AKIAIOSFODNN7EXAMPLE"
_ACCOUNT = "111122223333"


def minimal_investigation(**overrides: Any) -> dict[str, Any]:
    """A contract-complete investigation of one key with no findings; override any field."""
    base: dict[str, Any] = {
        "access_key_id": _KEY, "account_id": _ACCOUNT, "principal_arn": f"arn:aws:iam::{_ACCOUNT}:user/alice",
        "window": {"start": "2026-11-18T00:00:00Z", "end": "2026-11-20T00:00:00Z"},
        "first_seen": None, "last_seen": None, "event_count": 0, "source_ips": [], "regions": [],
        "credentials": [{"access_key_id": _KEY, "kind": "original", "created_by_event": None, "parent": None,
                         "principal_arn": f"arn:aws:iam::{_ACCOUNT}:user/alice"}],
        "principals": [f"arn:aws:iam::{_ACCOUNT}:user/alice"], "persistence": [], "data_access": [],
        "resources_created": [], "recon_errors": [], "severity": "P4", "verdict": "benign", "logging_gaps": [],
        "bytes_scanned": 0, "engine": "duckdb", "cost_estimate_usd": 0.0, "key": None, "queries": [],
    }
    return base | overrides


def minimal_investigation_record(**overrides: Any) -> InvestigationRecord:
    """`minimal_investigation(**overrides)` as the typed model the response reads."""
    return InvestigationRecord.model_validate(minimal_investigation(**overrides))


def make_incident(**overrides: Any) -> Incident:
    """A valid incident record: a benign, closed incident unless `overrides` say otherwise.

    `investigation` may be a partial dict: it is laid over `minimal_investigation()`. Other fields
    take what `Incident` takes (models or plain dicts).
    """
    investigation = minimal_investigation(**overrides.pop("investigation", {}))
    fields: dict[str, Any] = {"incident_id": "ir-test", "status": "closed", "investigation": investigation}
    return Incident.model_validate(fields | overrides)
