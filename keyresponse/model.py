"""The typed model of what an investigation hands the response: one schema for `incident.json`'s
`investigation`, published as JSON Schema in `docs/schemas/`.

    record = InvestigationRecord.model_validate(investigation.to_full_json())
    record.credentials[0].access_key_id

The analysis builds the investigation (`keyresponse.investigation.Investigation.to_full_json`), the
intel modules add the five answers and the flow adds the attacker's calls (`events`); every phase
after reads it. The incident record validates its `investigation` against this model when it is
written and read (`keyresponse.incident.Incident`), so a field renamed on one side and not the
other fails there, in the tests, not in a report.

Strict where the response decides: the investigation's own records (credentials, source IPs,
persistence, data access, resources, key facts) forbid unknown fields. The contract's fields
(`keyresponse.investigation.CONTRACT_FIELDS`, docs/architecture.md) are required; those added since
have defaults, so a record written by an earlier version still reads. The five intel answers are
open (`extra="allow"`): they name what they always carry, and may carry more (an alert's own
locations, a cost item's model-specific figures), which the report shows when present.

`docs/schemas/investigation.schema.json` and `docs/schemas/incident.schema.json` are generated from
these models (`python -m keyresponse.schemas docs/schemas`); a test fails when they are stale.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from keyresponse.guardrails import ForeignPrincipal

Verdict = Literal["malicious", "suspicious", "uncertain", "benign", "unknown"]
Severity = Literal["P1", "P2", "P3", "P4"]
Confidence = Literal["high", "medium", "low"]
CredentialKind = Literal["original", "access_key", "session"]
Classification = Literal["attacker", "known", "service", "uncertain"]


class Record(BaseModel):
    """A closed record: a field nobody declared is an error."""

    model_config = ConfigDict(extra="forbid")


class Answer(BaseModel):
    """An intel answer: the named fields typed (each may be missing from a hand-made or older record),
    and whatever else its module adds."""

    model_config = ConfigDict(extra="allow")


class Window(Record):
    start: str
    end: str


class SourceIp(Record):
    """One source IP of the investigated credentials, and how it was judged."""

    ip: str
    event_count: int
    user_agents: list[str]
    first_seen: str
    last_seen: str
    classification: Classification | None = None
    confidence: Confidence | None = None
    evidence: list[str] = []
    event_names: list[str] = []
    error_codes: list[str] = []


class CredentialRecord(Record):
    """A credential in the incident: the investigated key, or one derived from it."""

    access_key_id: str
    kind: CredentialKind
    created_by_event: str | None = None
    parent: str | None = None
    principal_arn: str | None = None
    confidence: Confidence | None = None
    evidence: list[str] = []


class UncertainCredential(Record):
    """A credential the evidence cannot attribute: offered to the approver, never planned."""

    access_key_id: str
    kind: CredentialKind
    created_by_event: str | None = None
    parent: str | None = None
    principal_arn: str | None = None
    reasons: list[str]


class PersistenceEvent(Record):
    event_name: str
    event_time: str
    resource: str | None
    detail: str | None = None
    access_key_id: str | None = None
    category: str | None = None
    region: str | None = None
    error_code: str | None = None
    user_name: str | None = Field(
        default=None, description="The user an MFA device was enabled for, when the event's resource does not say.")
    prior_policy: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("prior_policy", "before", "previous_policy"),
        description="A role's trust policy before the attacker changed it (added by hand): eradication restores it.")


class DataAccess(Record):
    event_name: str
    resource: str | None
    count: int
    access_key_id: str | None = None
    error_count: int = 0


class ResourceCreated(Record):
    type: str
    id: str
    region: str | None
    event_name: str
    access_key_id: str | None = None
    event_time: str | None = None
    group_id: str | None = Field(default=None, description="The security group of an ingress rule.")


class ReconError(Record):
    event_name: str
    error_code: str
    count: int


class QueryRun(Record):
    """A query file run for the investigation, with the parameters it was bound with."""

    query: str
    params: dict[str, str | int | list[str]]


class KeyFactsRecord(Record):
    """What STS and IAM said of the key (`keyresponse.validation.KeyFacts`)."""

    access_key_id: str
    account_id: str | None = None
    responder_account_id: str | None = None
    responder_arn: str | None = None
    owner: str | None = None
    owner_arn: str | None = None
    status: str | None = None
    created_at: str | None = None
    age_days: int | None = None
    last_used_at: str | None = None
    last_used_service: str | None = None
    last_used_region: str | None = None
    quarantine_policies: list[str] = []
    is_ours: bool | None = None
    gaps: list[str] = []


class Baseline(Record):
    """The owner's habits before the onset (`keyresponse.judgement.Baseline`)."""

    ips: list[str]
    user_agents: list[str]
    calls: list[str]
    networks: list[str]
    providers: list[str]
    events: int
    onset: str | None
    notes: list[str]


class AttackerEvent(Record):
    """One call made with the attacker's credentials (a row of `queries/key_events.sql`)."""

    event_id: str
    event_time: str
    event_source: str
    event_name: str
    aws_region: str | None
    source_ip: str | None
    user_agent: str | None
    error_code: str | None
    access_key_id: str | None
    principal_arn: str | None
    request_parameters: str | None
    response_elements: str | None


class Exposure(Answer):
    """Where and when the key leaked, and how soon it was used (`keyresponse.intel.exposure`)."""

    channel: str | None = None
    confidence: str | None = None
    summary: str | None = None
    url: str | None = Field(default=None, description="The public page where the key was found, when known.")
    repository: str | None = Field(default=None, description="The source repository it was committed to, when known.")


class ToolObserved(Answer):
    """A tool the attacker's calls show (`keyresponse.intel.tools`)."""

    tool: str | None = None
    category: str | None = None
    confidence: str | None = None
    count: int | None = None


class Intent(Answer):
    """What the attacker was after (`keyresponse.intel.intent`)."""

    primary: str | None = None
    intents: list[dict[str, Any]] = []
    summary: str | None = None


class Attribution(Answer):
    """Who the attacker's IPs and accounts are (`keyresponse.intel.attribution`)."""

    ips: list[dict[str, Any]] = []
    summary: str | None = None


class Damage(Answer):
    """What changed, what was read and what it costs (`keyresponse.intel.damage`)."""

    verdict: str | None = None
    summary: str | None = None
    cost_estimate: dict[str, Any] | None = None


class InvestigationRecord(Record):
    """The investigation as the response reads it: the contract of docs/architecture.md, what the
    report needs, the five answers and the attacker's calls."""

    access_key_id: str
    account_id: str | None
    principal_arn: str | None
    window: Window
    first_seen: str | None
    last_seen: str | None
    event_count: int
    source_ips: list[SourceIp]
    regions: list[str]
    credentials: list[CredentialRecord]
    principals: list[str]
    persistence: list[PersistenceEvent]
    data_access: list[DataAccess]
    resources_created: list[ResourceCreated]
    recon_errors: list[ReconError]
    severity: Severity
    verdict: Verdict
    logging_gaps: list[str]
    bytes_scanned: int
    engine: str
    cost_estimate_usd: float = 0.0
    key: KeyFactsRecord | None = None
    queries: list[QueryRun] = []
    attacker_infrastructure: list[ForeignPrincipal] = []
    key_creation: dict[str, Any] | None = Field(
        default=None, description="The row of queries/key_creation.sql that created the key, when the logs reach it.")
    uncertain_credentials: list[UncertainCredential] = []
    baseline: Baseline | None = None
    scoping_notes: list[str] = []
    exposure: Exposure | None = None
    tools_observed: list[ToolObserved] | None = None
    intent: Intent | None = None
    attribution: Attribution | None = None
    damage: Damage | None = None
    events: list[AttackerEvent] | None = Field(
        default=None, description="The attacker's calls, when the analysis stored them with the investigation.")
