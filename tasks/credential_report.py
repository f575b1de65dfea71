"""Prefect tasks of the preventive key scan: reach each account, fetch its credential report, enrich, act.

Every function here is a Prefect task whose plain body (`task.fn`) is what the CLI calls, so the
flow and `keyresponse scan-keys` run the same code. Reads retry on throttling (safe); the one
write, `deactivate_access_key_after_scan`, is the response's own `deactivate_access_key` action
(guardrails, ledger, verify, undo); it never retries blindly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from prefect import task
from prefect.tasks import exponential_backoff
from pydantic import BaseModel, Field

from keyresponse import aws
from keyresponse.credential_reports import aws_error, fetch_report
from keyresponse.errors import AwsCallError, GuardrailRefusal, VerificationFailed
from keyresponse.keyscan import (
    AccountFindings,
    AccountScan,
    CredentialReportError,
    Finding,
    ScanPolicy,
    find_findings,
    parse_credential_report,
)
from keyresponse.ledger import validate_incident_id
from keyresponse.retry import is_throttling, retry_on_transient
from tasks.actions import ActionContext, Clients, Step, Target, apply_steps, aws_errors
from tasks.containment.deactivate_access_key import ACTION as DEACTIVATE_ACCESS_KEY
from tasks.containment.deactivate_access_key import key_status

OWNER_TAG = "owner"
SESSION_NAME = "keyresponse-key-scan"


class ScanTarget(BaseModel):
    """One account to scan, and the role to assume there (None: the scanner's own credentials)."""

    account_id: str
    name: str = ""
    role_arn: str | None = None
    status: str = "ACTIVE"


def base_session(assume_role_arn: str | None = None) -> boto3.Session:
    """The scanner's session: the default chain, or a hub role (management / security-tooling account)."""
    if not assume_role_arn:
        return aws.session()
    return _assumed(aws.session(), assume_role_arn)


def _assumed(session: boto3.Session, role_arn: str) -> boto3.Session:
    sts = aws.client("sts", boto_session=session)
    try:
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=SESSION_NAME)["Credentials"]
    except ClientError as exc:
        raise aws_error(exc, f"assuming {role_arn}") from exc
    return aws.session(access_key_id=creds["AccessKeyId"], secret_access_key=creds["SecretAccessKey"],
                       session_token=creds["SessionToken"])


def session_for(target: ScanTarget, base: boto3.Session) -> boto3.Session:
    return _assumed(base, target.role_arn) if target.role_arn else base


@task(name="list_scan_targets", retries=3, retry_delay_seconds=exponential_backoff(2),
      retry_condition_fn=retry_on_transient)
def list_scan_targets(
    *, organization: bool = False, role_name: str = "", assume_role_arn: str | None = None
) -> list[ScanTarget]:
    """The caller's own account, or every account of its Organization (a role assumed in each member)."""
    base = base_session(assume_role_arn)
    try:
        own = aws.client("sts", boto_session=base).get_caller_identity()["Account"]
    except ClientError as exc:
        raise aws_error(exc, "reading the caller identity") from exc
    if not organization:
        return [ScanTarget(account_id=own, name="own account")]
    org = aws.client("organizations", boto_session=base)
    targets = []
    try:
        for page in org.get_paginator("list_accounts").paginate():
            for account in page["Accounts"]:
                member = account["Id"] != own
                targets.append(ScanTarget(
                    account_id=account["Id"], name=account.get("Name", ""), status=account.get("Status", "ACTIVE"),
                    role_arn=f"arn:aws:iam::{account['Id']}:role/{role_name}" if member else None))
    except ClientError as exc:
        raise aws_error(exc, "listing the accounts of the Organization") from exc
    return sorted(targets, key=lambda t: (t.role_arn is not None, t.account_id))


def enrich(iam: Any, findings: list[Finding]) -> list[Finding]:
    """Fill in access key ids and the owner tag, with two calls per flagged user (never per user scanned)."""
    users = sorted({f.user_name for f in findings if f.check.value != "root_access_key"})
    keys_of: dict[str, list[dict[str, Any]]] = {}
    owner_of: dict[str, str | None] = {}
    for user in users:
        try:
            metadata = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
            tags = iam.list_user_tags(UserName=user)["Tags"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":  # deleted since the report
                continue
            raise aws_error(exc, f"reading the keys and tags of {user}") from exc
        keys_of[user] = sorted(metadata, key=lambda k: k["CreateDate"])
        owner_of[user] = next((t["Value"] for t in tags if t["Key"].lower() == OWNER_TAG), None)
    for finding in findings:
        finding.owner = owner_of.get(finding.user_name)
        if finding.key_slot is None or finding.user_name not in keys_of:
            continue
        keys = keys_of[finding.user_name]
        created = finding.key_created_at
        match = next((k for k in keys if created and abs((k["CreateDate"] - created).total_seconds()) < 1.5), None)
        if match is None and len(keys) >= finding.key_slot:
            match = keys[finding.key_slot - 1]
        finding.access_key_id = match["AccessKeyId"] if match else None
    return findings


@task(name="scan_account", task_run_name="scan_account:{target.account_id}", retries=2,
      retry_delay_seconds=exponential_backoff(5), retry_jitter_factor=0.5, retry_condition_fn=retry_on_transient)
def scan_account(
    target: ScanTarget,
    policy: ScanPolicy,
    now: datetime | None = None,
    assume_role_arn: str | None = None,
    report_timeout_s: float = 300.0,
    poll_s: float = 2.0,
) -> AccountFindings:
    """Scan one account. Its own failures become an `error` entry so the other accounts still complete;
    throttling that outlived boto3's retries is raised so Prefect retries the (read-only) task."""
    now = now or datetime.now(UTC)
    if target.status != "ACTIVE":
        return AccountFindings(scan=AccountScan(account_id=target.account_id, status="skipped",
                                                message=f"account status is {target.status}"))
    try:
        session = session_for(target, base_session(assume_role_arn))
        iam = aws.client("iam", boto_session=session)
        report = fetch_report(iam, target.account_id, timeout_s=report_timeout_s, poll_s=poll_s)
        parsed = parse_credential_report(report.content, account_id=target.account_id)
        findings = enrich(iam, find_findings(parsed, policy, now))
    except ClientError as exc:
        if is_throttling(exc):
            raise
        return _failed(target, str(aws_error(exc, f"scanning account {target.account_id}")))
    except AwsCallError as exc:
        if is_throttling(exc.__cause__):
            raise exc.__cause__ from None  # type: ignore[misc]
        return _failed(target, str(exc))
    except (CredentialReportError, BotoCoreError) as exc:
        return _failed(target, str(exc))
    return AccountFindings(
        scan=AccountScan(account_id=target.account_id, status="ok", user_count=parsed.user_count,
                         problems=parsed.problems, report_generated_at=report.generated_at),
        findings=findings)


def _failed(target: ScanTarget, message: str) -> AccountFindings:
    return AccountFindings(scan=AccountScan(account_id=target.account_id, status="error", message=message))


class DeactivationRecord(BaseModel):
    """What the remediation did to one key; `before` is the status `keyresponse undo` restores."""

    account_id: str
    user_name: str
    access_key_id: str
    before: str
    after: str
    incident_id: str | None = Field(default=None, description="The ledger the change is in: `keyresponse undo` it.")
    entry_id: str | None = Field(default=None, description="Its ledger entry (None: it was already inactive).")
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def remediation_id(scope: str, scanned_at: datetime) -> str:
    """The incident id a scan's remediation is recorded under: one ledger per approved remediation."""
    return validate_incident_id(f"scan-{scope}-{scanned_at.astimezone(UTC):%Y%m%dT%H%M%SZ}")


@task(name="deactivate_access_key_after_scan",
      task_run_name="deactivate_access_key:{finding.access_key_id}")
def deactivate_access_key_after_scan(
    finding: Finding,
    target: ScanTarget,
    assume_role_arn: str | None = None,
    *,
    incident_id: str,
) -> DeactivationRecord:
    """Set the key Inactive (never delete it) through the action contract, as a response does: the
    guardrails (protected principals, the scanner's own identity and key) run first, the user's
    before-state goes to the evidence store, the change is a ledger entry of `incident_id` and is
    verified after; `keyresponse undo <incident_id> --apply` sets the key Active again. "Already
    inactive" is success; a key no longer on its user changes nothing and fails the step."""
    if not finding.access_key_id:
        raise GuardrailRefusal(f"no access key id is known for {finding.fingerprint}: refusing to guess")
    session = session_for(target, base_session(assume_role_arn))
    ctx = ActionContext.create(incident_id, dry_run=False, clients=Clients(session))
    key = Target(kind="access_key", id=finding.access_key_id, user_name=finding.user_name)
    change = DEACTIVATE_ACCESS_KEY.plan(ctx, key)  # the guardrails first; None: inactive already, or gone
    record = DeactivationRecord(account_id=finding.account_id, user_name=finding.user_name, access_key_id=key.id,
                                before="Inactive", after="Inactive", incident_id=incident_id)
    if change is None:
        with aws_errors(f"reading access key {key.id} of {key.user_name}"):
            status = key_status(ctx, key)
        if status == "Absent":
            raise VerificationFailed(f"{key.id} no longer belongs to {key.user_name}; nothing was changed")
        return record
    written = apply_steps(ctx, [Step(DEACTIVATE_ACCESS_KEY, key)])
    return record.model_copy(update={"before": str(change.before["status"]),
                                     "entry_id": written[0].entry_id if written else None})
