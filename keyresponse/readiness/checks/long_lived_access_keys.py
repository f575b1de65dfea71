"""No IAM user has an active access key older than the preventive scan's limit (once per account).

The findings are the preventive scan's `long_lived` ones (protected principals left out): a scan's result
given to `assess` is reused, else the credential report is fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keyresponse.credential_reports import fetch_report
from keyresponse.keyscan import Check as ScanCheck
from keyresponse.keyscan import (
    Finding,
    ScanPolicy,
    apply_suppressions,
    find_findings,
    parse_credential_report,
)
from keyresponse.readiness.checks._common import unreadable
from keyresponse.readiness.model import Check
from keyresponse.readiness.unit import READ_ERRORS, ReadinessCheck, Scope
from keyresponse.settings import Settings

if TYPE_CHECKING:
    from keyresponse.aws import ClientFactory


def long_lived_findings(
    clients: ClientFactory, settings: Settings, account_id: str, max_age_days: int
) -> list[Finding]:
    """The preventive scan's `long_lived` findings for one account (protected principals left out)."""
    policy = ScanPolicy(max_age_days=max_age_days, protected_principals=list(settings.protected_principals))
    report = fetch_report(clients("iam"), account_id, timeout_s=60, poll_s=0.2)
    now = datetime.now(UTC)
    findings = find_findings(parse_credential_report(report.content, account_id=account_id), policy, now)
    kept, _, _ = apply_suppressions(findings, protected=policy.protected_principals, exceptions=(), today=now.date())
    return kept


def check_long_lived_keys(findings: Sequence[Finding], account_id: str, max_age_days: int) -> Check:
    title = f"No IAM user has an active access key older than {max_age_days} days"
    long_lived = sorted((f for f in findings if f.check == ScanCheck.LONG_LIVED and f.account_id == account_id),
                        key=lambda f: (-(f.age_days or 0), f.user_name))
    users = sorted({f.user_name for f in long_lived})
    if not long_lived:
        return Check(id=CHECK.id, title=title, account_id=account_id, status="pass", fix="",
                     evidence=f"the preventive scan finds no active key older than {max_age_days} days")
    detail = ", ".join(f"{f.user_name} ({f.age_days} d)" for f in long_lived)
    return Check(id=CHECK.id, title=title, account_id=account_id, status="fail",
                 evidence=f"{len(users)} user(s) with long-lived keys: {detail}", fix=CHECK.remediation,
                 facts={"users": users})


def _run(scope: Scope, region: str) -> Check:
    scan = scope.scan
    if scan is not None and any(a.account_id == scope.account_id and a.status == "ok" for a in scan.accounts):
        return check_long_lived_keys(scan.findings, scope.account_id, scan.policy.max_age_days)
    max_age = scope.options.max_key_age_days
    try:
        findings = long_lived_findings(scope.clients, scope.settings, scope.account_id, max_age)
    except READ_ERRORS as exc:
        return unreadable(CHECK.id, CHECK.title, scope.account_id, None, exc, CHECK.remediation)
    return check_long_lived_keys(findings, scope.account_id, max_age)


CHECK = ReadinessCheck(
    id="long_lived_access_keys",
    title="No IAM user has a long-lived access key",
    per="account",
    severity="high",
    rationale="Long-lived access keys are what gets exposed (committed, pasted, left in an image) and what an "
              "attacker can use until someone notices; every one of them is a future incident, and an old one "
              "is the hardest to rotate in a hurry.",
    remediation="Move these workloads to roles (IAM Identity Center, IAM Roles Anywhere, instance or task roles); "
                "until then rotate the keys. The preventive_key_scan flow (remediate=true) notifies the owners and "
                "deactivates keys after their grace period, with approval. Not part of the automatic hardening.",
    permissions=("iam:GenerateCredentialReport", "iam:GetCredentialReport"),
    run=_run,
    references=(
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html",
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_access-keys.html",
    ),
    attack=("T1078.004", "T1552.001"),
    cis=("1.14",),
)
