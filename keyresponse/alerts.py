"""Alerts: every intake format normalizes to one `Alert`.

One normalizer per source, each `payload -> list[Alert]` (one event may name several keys or carry
several findings). Bad input raises `InputError` naming the field, by its path in the payload
(`detail.resource.accessKeyDetails.accessKeyId is missing ...`). Input that is well formed but not
worth a response (a GuardDuty sample finding, a GitHub alert about a non-AWS secret, a resolved
Security Hub finding) raises `NotActionable`, a kind of `InputError` the webhook answers with 200.

| source        | payload                                                                    | key id from |
|---------------|----------------------------------------------------------------------------|-------------|
| `guardduty`   | EventBridge "GuardDuty Finding" (or the bare finding)                      | `detail.resource.accessKeyDetails.accessKeyId` |
| `health`      | EventBridge "AWS Health Event", `AWS_RISK_CREDENTIALS_*`                   | `detail.affectedEntities[].entityValue` |
| `github`      | `secret_scanning_alert` webhook, `alert.secret` filled in from the REST API | `alert.secret` |
| `securityhub` | EventBridge "Security Hub Findings - Imported" (or one bare ASFF finding)  | `Resources[Type=AwsIamAccessKey]` |
| `cloudtrail`  | `AWSCompromisedKeyQuarantine*` attached to a user (EventBridge "AWS API Call via CloudTrail" or the bare record) | none: names the user only |
| `generic`     | `{"access_key_id", "reason"}`                                              | `access_key_id` |

**Who attached the quarantine policy.** A `cloudtrail` alert is high confidence (the key is
contained without approval) only when AWS itself attached the policy: the record's `userIdentity`
is of type `AWSService`, which CloudTrail writes for a call an AWS service makes as itself and no
caller can claim. Anyone else holding `iam:AttachUserPolicy` (an attacker with a leaked key, a
responder by hand) can attach the same managed policy to any user: that record names the caller's
own identity (`IAMUser`, `AssumedRole`…), and is a normal-confidence alert that waits for approval
like any other. A user agent (`AWS Internal`, `aws-internal/3 …`), a source address or an
`invokedBy` are not enough: the first two are the caller's to choose, and a service acting with a
customer's credentials (CloudFormation attaching the policy for whoever deploys the stack) writes
`invokedBy` beside that customer's identity. None of the real records in
`tests/fixtures/alerts/cloudtrail_quarantine.panther_analysis.json` is of AWS's own making by that
test (a console session, and the quarantined user itself), so they are normal-confidence alerts;
should AWS ever write its attach otherwise, it loses only the automatic first step, never the response.

Size: one normalizer per source over one tree reader with path-precise errors; adding a source is adding here (README, "How to add").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from keyresponse.errors import InputError, InvalidAccessKeyId
from keyresponse.keys import ACCESS_KEY_ID_IN_TEXT_RE, validate_access_key_id

Source = Literal["guardduty", "health", "github", "securityhub", "cloudtrail", "generic"]
Severity = Literal["low", "medium", "high", "critical"]
SOURCES: tuple[Source, ...] = get_args(Source)

ACCOUNT_ID_RE = re.compile(r"^[0-9]{12}$", re.ASCII)
QUARANTINE_POLICY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/AWSCompromisedKeyQuarantine(V[0-9]+)?$", re.ASCII)
QUARANTINE_POLICY_NAME_RE = re.compile(r"^AWSCompromisedKeyQuarantine(V[0-9]+)?$", re.ASCII)
GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
#: GitHub secret types whose `secret` is an access key id (github/docs secret-scanning patterns).
GITHUB_AWS_KEY_ID_TYPES = frozenset({"aws_access_key_id", "aws_temporary_access_key_id"})
#: `secret_scanning_alert` actions that (re)open an exposure; the others (resolved, ...) are ignored.
GITHUB_TRIGGER_ACTIONS = frozenset({"created", "reopened", "publicly_leaked", "validated"})


class NotActionable(InputError):
    """Well-formed input that names no exposure worth a response; the message says why."""


class Alert(BaseModel):
    """One alert about one access key (or, for AWS's quarantine attach, about one IAM user)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Source
    alert_id: str = Field(min_length=1, max_length=512, description="Stable id of the finding at its source.")
    access_key_id: str | None = Field(
        description="The exposed key. None only for `cloudtrail` (AWS's quarantine attach names the user, "
                    "not the key): the response then finds the user's keys itself."
    )
    account_id: str | None = Field(default=None, description="12-digit account id, when the source knows it.")
    principal: str | None = Field(
        default=None, description="IAM user ARN when the source names an IAM user, else the name or ARN given."
    )
    observed_at: datetime = Field(description="When the source first observed the exposure or activity (UTC).")
    severity: Severity
    high_confidence: bool = Field(
        description="AWS Health exposure, AWS itself attaching its quarantine policy (userIdentity type AWSService), "
                    "or GuardDuty severity >= 7: containment may run right after validation."
    )
    title: str
    raw: dict[str, Any] = Field(description="The payload as received (the GitHub one with `alert.secret` filled in).")

    @field_validator("access_key_id")
    @classmethod
    def _key_format(cls, value: str | None) -> str | None:
        return None if value is None else validate_access_key_id(value)

    @field_validator("account_id")
    @classmethod
    def _account_format(cls, value: str | None) -> str | None:
        if value is not None and not ACCOUNT_ID_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a 12-digit AWS account id")
        return value

    @field_validator("observed_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _names_a_subject(self) -> Alert:
        if self.access_key_id is None and self.principal is None:
            raise ValueError("an alert must name an access key id or a principal")
        return self

    @property
    def idempotency_key(self) -> str:
        """`source:alert_id`: what makes this alert the same alert when it is delivered again."""
        return idempotency_key(self.source, self.alert_id)

    @property
    def incident_id(self) -> str:
        """The incident this alert opens when no incident about its key is open yet (generation 1)."""
        return self.incident_id_at(1)

    def incident_id_at(self, generation: int) -> str:
        """The incident this alert opens as its `generation`-th: 1 the first time; one more each time
        the incident it belonged to ended without closing (its run Failed, Crashed or was Cancelled)."""
        key = self.idempotency_key if generation == 1 else self.launch_key(generation)
        return "inc-" + hashlib.sha256(key.encode()).hexdigest()[:12]

    def launch_key(self, generation: int) -> str:
        """The Prefect idempotency key of this alert's `generation`-th incident: `source:alert_id@gen<N>`.

        Prefect never forgets an idempotency key, so a key without the generation would hand back a run
        that ended long ago; with it, each incident the alert opens gets a run of its own, and a retried
        launch of one incident still gets that incident's run."""
        if generation < 1:
            raise ValueError(f"an incident generation starts at 1, got {generation}")
        return f"{self.idempotency_key}@gen{generation}"

    @property
    def subjects(self) -> tuple[str, ...]:
        """What this alert is about, for attaching alerts to an open incident.

        The key when known; an alert that knows no key (AWS's quarantine attach) is about its IAM user.
        """
        if self.access_key_id is not None:
            return (f"key:{self.access_key_id}",)
        return (f"principal:{self.principal}",)


# --- navigating a payload with precise errors ----------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """A value inside the payload and its path (`detail.findings[0].Resources[1]`), for error messages."""

    value: Any
    path: str

    def _name(self) -> str:
        return self.path or "the body"

    def child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def obj(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise InputError(f"{self._name()} must be a JSON object, got {_kind(self.value)}")
        return self.value

    def get(self, key: str) -> _Node | None:
        """The child, or None when it is absent or null."""
        value = self.obj().get(key)
        return None if value is None else _Node(value, self.child_path(key))

    def req(self, key: str, why: str = "") -> _Node:
        node = self.get(key)
        if node is None:
            raise InputError(f"{self.child_path(key)} is missing" + (f": {why}" if why else ""))
        return node

    def items(self) -> list[_Node]:
        if not isinstance(self.value, list):
            raise InputError(f"{self._name()} must be a JSON array, got {_kind(self.value)}")
        return [_Node(v, self.child_path(i)) for i, v in enumerate(self.value)]

    def text(self) -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            got = "an empty string" if isinstance(self.value, str) else _kind(self.value)
            raise InputError(f"{self._name()} must be a non-empty string, got {got}")
        return self.value.strip()

    def number(self) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise InputError(f"{self._name()} must be a number, got {_kind(self.value)}")
        return float(self.value)

    def opt_str(self, key: str) -> str | None:
        node = self.get(key)
        return None if node is None else node.text()


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _key(node: _Node) -> str:
    try:
        return validate_access_key_id(node.text())
    except InvalidAccessKeyId as exc:
        raise InvalidAccessKeyId(f"{node.path}: {exc}") from None


def _account(node: _Node | None) -> str | None:
    if node is None:
        return None
    value = node.text() if isinstance(node.value, str) else node.value
    if not isinstance(value, str) or not ACCOUNT_ID_RE.fullmatch(value):
        raise InputError(f"{node.path} must be a 12-digit AWS account id, got {str(value)[:40]!r}")
    return value


_TIME_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d{2}:?\d{2})?$",
    re.ASCII,
)


def _time(node: _Node) -> datetime:
    """ISO-8601 (any fraction, `Z` or offset, `T` or space) or RFC 1123 (`Sat, 05 Jun 2016 15:10:09 GMT`)."""
    text = node.text()
    if match := _TIME_RE.fullmatch(text):
        frac = (match["frac"] or "")[:6].ljust(6, "0")
        tz = match["tz"] or "+00:00"
        iso = f"{match['date']}T{match['time']}.{frac}{'+00:00' if tz == 'Z' else tz}"
        try:
            return datetime.fromisoformat(iso).astimezone(UTC)
        except ValueError:
            pass
    else:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            parsed = None
        if parsed is not None:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise InputError(f"{node.path} is not a time: {text[:40]!r} (expected ISO-8601 or RFC 1123)")


def _first_time(*nodes: _Node | None, what: str) -> datetime:
    for node in nodes:
        if node is not None:
            return _time(node)
    raise InputError(f"{what} is missing: the alert has no time")


def _user_principal(user_name: str, account_id: str | None, partition: str = "aws") -> str:
    """An IAM user as its ARN when the account is known (user names may carry no path)."""
    if account_id is None or ":" in user_name:
        return user_name
    return f"arn:{partition}:iam::{account_id}:user/{user_name}"


def _unwrap(root: _Node, source: str, detail_types: frozenset[str], route: str) -> tuple[_Node, _Node | None]:
    """(inner record, EventBridge envelope or None). Accepts the envelope or the bare inner record."""
    envelope = root.obj()
    if "detail" not in envelope:
        return root, None
    got_source = envelope.get("source")
    if got_source is not None and not isinstance(got_source, str):
        raise InputError(f"source must be a string, got {type(got_source).__name__}")
    if got_source is not None and got_source != source:
        hint = {f"aws.{s}": s for s in ("guardduty", "health", "securityhub")} | {"aws.iam": "cloudtrail"}
        where = f"; post it to /alerts/{hint[got_source]}" if got_source in hint else ""
        raise InputError(f"source is {got_source!r}, expected {source!r} on /alerts/{route}{where}")
    detail_type = envelope.get("detail-type")
    if detail_type is not None and not isinstance(detail_type, str):
        raise InputError(f"detail-type must be a string, got {type(detail_type).__name__}")
    if detail_type is not None and detail_type not in detail_types:
        raise InputError(f"detail-type {str(detail_type)[:60]!r} is not one of {sorted(detail_types)}")
    return root.req("detail"), root


# --- severities -------------------------------------------------------------------------------------


def guardduty_severity(score: float) -> Severity:
    """GuardDuty's bands: 1-3.9 low, 4-6.9 medium, 7-8.9 high, 9-10 critical."""
    if score >= 9:
        return "critical"
    if score >= 7:
        return "high"
    return "medium" if score >= 4 else "low"


def asff_severity(label: str | None, normalized: float | None) -> Severity | None:
    """ASFF `Severity.Label`, else `Severity.Normalized` (0-39 low, 40-69 medium, 70-89 high, 90-100 critical)."""
    if label is not None:
        mapped: dict[str, Severity] = {"INFORMATIONAL": "low", "LOW": "low", "MEDIUM": "medium",
                                       "HIGH": "high", "CRITICAL": "critical"}
        if label.upper() in mapped:
            return mapped[label.upper()]
    if normalized is not None:
        if normalized >= 90:
            return "critical"
        if normalized >= 70:
            return "high"
        return "medium" if normalized >= 40 else "low"
    return None


# --- the normalizers --------------------------------------------------------------------------------


def normalize_guardduty(payload: JsonValue) -> list[Alert]:
    root = _Node(payload, "")
    detail, envelope = _unwrap(root, "aws.guardduty", frozenset({"GuardDuty Finding"}), "guardduty")
    finding_type = detail.req("type").text()
    service = detail.get("service")
    info = service.get("additionalInfo") if service else None
    if info is not None and isinstance(info.value, dict) and info.value.get("sample") is True:
        raise NotActionable(f"{info.path}.sample is true: GuardDuty sample findings are not acted on")
    if service is not None and service.obj().get("archived") is True:
        raise NotActionable(f"{service.path}.archived is true: the finding was archived")
    resource = detail.req("resource", why=f"GuardDuty finding type {finding_type} names no resource")
    details = resource.req(
        "accessKeyDetails",
        why=f"finding type {finding_type} (resource type {resource.obj().get('resourceType')!r}) names no access key",
    )
    key = _key(details.req("accessKeyId"))
    account = _account(detail.get("accountId")) or _account(envelope.get("account") if envelope else None)
    partition = detail.opt_str("partition") or "aws"
    user_name, user_type = details.opt_str("userName"), details.opt_str("userType")
    if user_name is None:
        principal = details.opt_str("principalId")
    elif user_type == "IAMUser":
        principal = _user_principal(user_name, account, partition)
    elif user_type == "Root" and account is not None:
        principal = f"arn:{partition}:iam::{account}:root"
    else:
        principal = user_name
    score = detail.req("severity").number()
    observed = _first_time(service.get("eventFirstSeen") if service else None, detail.get("createdAt"),
                           envelope.get("time") if envelope else None, what=f"{detail.child_path('createdAt')}")
    alert_id = (detail.get("arn") or detail.req("id")).text()
    return [Alert(source="guardduty", alert_id=alert_id, access_key_id=key, account_id=account, principal=principal,
                  observed_at=observed, severity=guardduty_severity(score), high_confidence=score >= 7,
                  title=detail.opt_str("title") or finding_type, raw=root.obj())]


_HEALTH_USER_RE = re.compile(r"belonging to IAM User (?P<user>[\w+=,.@-]+)", re.ASCII)


def normalize_health(payload: JsonValue) -> list[Alert]:
    root = _Node(payload, "")
    detail, envelope = _unwrap(root, "aws.health", frozenset({"AWS Health Event"}), "health")
    code = detail.req("eventTypeCode").text()
    if not code.startswith("AWS_RISK_CREDENTIALS_"):
        raise InputError(f"detail.eventTypeCode {code!r} is not a credential-exposure event "
                         "(expected AWS_RISK_CREDENTIALS_EXPOSED)")
    event_arn = detail.req("eventArn").text()
    metadata = detail.get("eventMetadata")
    entities = detail.get("affectedEntities")
    key_nodes = [e.req("entityValue") for e in entities.items()] if entities else []
    if not key_nodes and metadata is not None and metadata.get("publicKey") is not None:
        key_nodes = [metadata.req("publicKey")]
    if not key_nodes:
        raise InputError("detail.affectedEntities is missing or empty: the event names no access key")
    keys = list(dict.fromkeys(_key(node) for node in key_nodes))
    account = (_account(envelope.get("account") if envelope else None)
               or _account(metadata.get("accountId") if metadata else None))
    user = metadata.opt_str("userName") if metadata else None
    description = " ".join(
        str(d.get("latestDescription", "")) for d in (detail.obj().get("eventDescription") or []) if isinstance(d, dict)
    )
    if user is None and (match := _HEALTH_USER_RE.search(description)):
        user = match["user"].rstrip(".,")
    observed = _first_time(detail.get("startTime"), envelope.get("time") if envelope else None,
                           what="detail.startTime")
    exposed = code == "AWS_RISK_CREDENTIALS_EXPOSED"
    return [Alert(source="health", alert_id=event_arn if len(keys) == 1 else f"{event_arn}#{key}",
                  access_key_id=key, account_id=account,
                  principal=_user_principal(user, account) if user else None, observed_at=observed,
                  severity="critical" if exposed else "high", high_confidence=exposed,
                  title=f"AWS Health {code}: access key {key} exposed", raw=root.obj())
            for key in keys]


def idempotency_key(source: str, alert_id: str) -> str:
    return f"{source}:{alert_id}"


@dataclass(frozen=True)
class GitHubAlertRef:
    """Where the GitHub REST API keeps a secret-scanning alert (it holds the secret; the webhook does not)."""

    repository: str  # owner/name
    number: int

    @property
    def api_path(self) -> str:
        return f"/repos/{self.repository}/secret-scanning/alerts/{self.number}"

    @property
    def alert_id(self) -> str:
        return f"{self.repository}#{self.number}"


def github_alert_ref(payload: JsonValue) -> GitHubAlertRef:
    """Check a `secret_scanning_alert` webhook and say which REST alert to fetch the secret from."""
    root = _Node(payload, "")
    action = root.req("action").text()
    if action not in GITHUB_TRIGGER_ACTIONS:
        raise NotActionable(f"action {action!r} does not open an exposure (acted on: {sorted(GITHUB_TRIGGER_ACTIONS)})")
    alert = root.req("alert")
    secret_type = alert.req("secret_type").text()
    if secret_type not in GITHUB_AWS_KEY_ID_TYPES:
        raise NotActionable(f"alert.secret_type {secret_type!r} is not an AWS access key id "
                            f"(acted on: {sorted(GITHUB_AWS_KEY_ID_TYPES)})")
    number_node = alert.req("number")
    number = number_node.value
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise InputError(f"alert.number must be a positive integer, got {_kind(number)}")
    repository = root.req("repository").req("full_name").text()
    if not GITHUB_REPO_RE.fullmatch(repository):
        raise InputError(f"repository.full_name {repository[:80]!r} is not owner/name")
    return GitHubAlertRef(repository=repository, number=number)


def normalize_github(payload: JsonValue) -> list[Alert]:
    """A `secret_scanning_alert` webhook whose `alert.secret` was filled in from the REST API."""
    ref = github_alert_ref(payload)
    root = _Node(payload, "")
    alert = root.req("alert")
    secret = alert.req("secret", why=f"GitHub webhooks do not carry the secret; fetch it from GET {ref.api_path}")
    key = _key(secret)
    validity = alert.opt_str("validity") or "unknown"
    public = alert.obj().get("publicly_leaked") is True
    severity: Severity
    if validity == "inactive":
        severity = "low"
    elif validity == "active":
        severity = "critical" if public else "high"
    else:
        severity = "high" if public else "medium"
    observed = alert.get("created_at") or alert.get("updated_at")
    shown = alert.opt_str("secret_type_display_name") or alert.req("secret_type").text()
    return [Alert(source="github", alert_id=ref.alert_id, access_key_id=key,
                  observed_at=_time(observed) if observed else datetime.now(UTC), severity=severity,
                  high_confidence=False, title=f"GitHub secret scanning: {shown} in {ref.repository} "
                                                f"(alert #{ref.number}, validity {validity})", raw=root.obj())]


def normalize_securityhub(payload: JsonValue) -> list[Alert]:
    root = _Node(payload, "")
    detail, envelope = _unwrap(
        root, "aws.securityhub",
        frozenset({"Security Hub Findings - Imported", "Security Hub Findings - Custom Action"}), "securityhub",
    )
    findings = detail.req("findings").items() if envelope is not None or "findings" in detail.obj() else [detail]
    if not findings:
        raise InputError(f"{detail.child_path('findings')} is empty")
    alerts: list[Alert] = []
    skipped: list[str] = []
    for finding in findings:
        key_resources = [r for r in finding.req("Resources").items() if r.obj().get("Type") == "AwsIamAccessKey"]
        if not key_resources:
            continue
        workflow = finding.get("Workflow")
        status = (workflow.opt_str("Status") if workflow else None) or finding.opt_str("WorkflowState")
        if finding.opt_str("RecordState") == "ARCHIVED" or status in {"RESOLVED", "SUPPRESSED"}:
            skipped.append(f"{finding.path} is {finding.opt_str('RecordState')}/{status}")
            continue
        finding_id = finding.req("Id").text()
        provider = finding.get("FindingProviderFields")
        sev = finding.get("Severity") or (provider.get("Severity") if provider else None)
        if sev is None:
            raise InputError(f"{finding.child_path('Severity')} is missing")
        normalized = sev.get("Normalized")
        severity = asff_severity(sev.opt_str("Label"), normalized.number() if normalized else None)
        if severity is None:
            raise InputError(f"{sev.path} has neither a known Label nor Normalized")
        product = sev.get("Product")
        from_guardduty = "/aws/guardduty" in (finding.opt_str("ProductArn") or "")
        high_confidence = from_guardduty and product is not None and product.number() >= 7
        observed = _first_time(finding.get("FirstObservedAt"), finding.get("CreatedAt"),
                               envelope.get("time") if envelope else None, what=finding.child_path("CreatedAt"))
        user_resources = [r for r in finding.req("Resources").items() if r.obj().get("Type") == "AwsIamUser"]
        for resource in key_resources:
            details_node = resource.get("Details")
            access = details_node.get("AwsIamAccessKey") if details_node else None
            key_node = access.get("AccessKeyId") if access else None
            if key_node is None:
                found = ACCESS_KEY_ID_IN_TEXT_RE.search(resource.req("Id").text())
                key_node = _Node(found.group(0), resource.child_path("Id")) if found else resource.req("Id")
            key = _key(key_node)
            account = (_account(access.get("AccountId") if access else None)
                       or _account(finding.get("AwsAccountId"))
                       or _account(envelope.get("account") if envelope else None))
            user = (access.opt_str("UserName") or access.opt_str("PrincipalName")) if access else None
            principal = _user_principal(user, account) if user else None
            if principal is None and user_resources:
                principal = user_resources[0].req("Id").text()
            if principal is None and access is not None and (session := access.get("SessionContext")):
                issuer = session.get("SessionIssuer")
                principal = issuer.opt_str("Arn") if issuer else None
            alert_id = finding_id if len(key_resources) == 1 else f"{finding_id}#{key}"
            alerts.append(Alert(source="securityhub", alert_id=alert_id, access_key_id=key, account_id=account,
                                principal=principal, observed_at=observed, severity=severity,
                                high_confidence=high_confidence, title=finding.opt_str("Title") or finding_id,
                                raw=root.obj()))
    if not alerts:
        if skipped:
            raise NotActionable("; ".join(skipped))
        raise InputError(f"no finding in {detail.path or 'the body'} has a Resources[] entry of Type AwsIamAccessKey")
    return alerts


def normalize_cloudtrail(payload: JsonValue) -> list[Alert]:
    """AWS attaching its AWSCompromisedKeyQuarantine policy to a user (or, formerly, putting it inline)."""
    root = _Node(payload, "")
    record, envelope = _unwrap(root, "aws.iam", frozenset({"AWS API Call via CloudTrail"}), "cloudtrail")
    event_source = record.req("eventSource").text()
    if event_source != "iam.amazonaws.com":
        raise InputError(f"{record.child_path('eventSource')} is {event_source!r}, expected 'iam.amazonaws.com'")
    event_name = record.req("eventName").text()
    params = record.req("requestParameters")
    if event_name == "AttachUserPolicy":
        policy_node = params.req("policyArn")
        pattern = QUARANTINE_POLICY_ARN_RE
    elif event_name == "PutUserPolicy":
        policy_node = params.req("policyName")
        pattern = QUARANTINE_POLICY_NAME_RE
    else:
        raise InputError(f"{record.child_path('eventName')} {event_name!r} is not a quarantine-policy attach "
                         "(expected AttachUserPolicy or PutUserPolicy)")
    policy = policy_node.text()
    if not pattern.fullmatch(policy):
        raise InputError(f"{policy_node.path} {policy[:120]!r} is not AWS's AWSCompromisedKeyQuarantine policy")
    if (error := record.get("errorCode")) is not None:
        raise NotActionable(f"{error.path} is {str(error.value)[:60]!r}: the quarantine policy was not attached")
    user = params.req("userName").text()
    identity = record.get("userIdentity")
    account = (_account(record.get("recipientAccountId"))
               or _account(envelope.get("account") if envelope else None)
               or _account(identity.get("accountId") if identity else None))
    observed = _first_time(record.get("eventTime"), envelope.get("time") if envelope else None,
                           what=record.child_path("eventTime"))
    name = policy.rsplit("/", 1)[-1]
    by_aws, caller = _attached_by(identity)
    title = (f"AWS applied {name} to IAM user {user}" if by_aws
             else f"{name} attached to IAM user {user} by {caller}, not by AWS")
    return [Alert(source="cloudtrail", alert_id=record.req("eventID").text(), access_key_id=None, account_id=account,
                  principal=_user_principal(user, account), observed_at=observed,
                  severity="critical" if by_aws else "high", high_confidence=by_aws, title=title, raw=root.obj())]


def _attached_by(identity: _Node | None) -> tuple[bool, str]:
    """(whether AWS itself made the call, who did, in words) from a record's `userIdentity`: only an
    `AWSService` identity is AWS (the module docstring says why nothing else is)."""
    if identity is None or not isinstance(identity.value, dict):
        return False, "an unnamed caller"
    kind = identity.value.get("type")
    if kind == "AWSService":
        return True, "AWS"
    arn = identity.value.get("arn")
    who = arn if isinstance(arn, str) and arn else f"a caller of type {kind}" if isinstance(kind, str) else "a caller"
    return False, who[:200]


class GenericAlertIn(BaseModel):
    """The manual/generic intake body."""

    model_config = ConfigDict(extra="forbid")

    access_key_id: str
    reason: str = Field(min_length=1, max_length=2000)
    account_id: str | None = None
    principal: str | None = Field(default=None, max_length=2048)
    severity: Severity = "high"
    alert_id: str | None = Field(default=None, min_length=1, max_length=256)
    observed_at: datetime | None = None


def normalize_generic(payload: JsonValue) -> list[Alert]:
    _Node(payload, "").obj()
    try:
        body = GenericAlertIn.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                             for err in exc.errors(include_url=False))
        raise InputError(problems) from None
    key = _key(_Node(body.access_key_id, "access_key_id"))
    account = _account(_Node(body.account_id, "account_id")) if body.account_id is not None else None
    reason = body.reason.strip()
    if not reason:
        raise InputError("reason must be a non-empty string")
    alert_id = body.alert_id or "generic-" + hashlib.sha256(f"{key}\n{reason}".encode()).hexdigest()[:16]
    return [Alert(source="generic", alert_id=alert_id, access_key_id=key, account_id=account,
                  principal=body.principal, observed_at=body.observed_at or datetime.now(UTC),
                  severity=body.severity, high_confidence=False, title=f"Manual alert: {reason[:160]}",
                  raw=_Node(payload, "").obj())]


NORMALIZERS: dict[Source, Callable[[JsonValue], list[Alert]]] = {
    "guardduty": normalize_guardduty,
    "health": normalize_health,
    "github": normalize_github,
    "securityhub": normalize_securityhub,
    "cloudtrail": normalize_cloudtrail,
    "generic": normalize_generic,
}


def normalize(source: str, payload: JsonValue) -> list[Alert]:
    """The alerts in `payload` from `source`; `InputError` (or `NotActionable`) says what is wrong."""
    if source not in NORMALIZERS:
        raise InputError(f"unknown alert source {source!r}; expected one of {', '.join(SOURCES)}")
    try:
        return NORMALIZERS[source](payload)
    except ValidationError as exc:  # an Alert field the normalizer passed through unchecked
        raise InputError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
