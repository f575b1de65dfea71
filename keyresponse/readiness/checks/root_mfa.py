"""The root user has MFA (once per account; not verifiable on the sandbox, which has no root user)."""

from __future__ import annotations

from keyresponse.readiness.checks._common import unreadable
from keyresponse.readiness.checks._root import (
    EMULATED_REASON,
    ROOT_PERMISSIONS,
    ROOT_REFERENCES,
    account_summary,
)
from keyresponse.readiness.model import Check
from keyresponse.readiness.unit import READ_ERRORS, ReadinessCheck, Scope


def _run(scope: Scope, region: str) -> Check:
    title, fix, account_id = CHECK.title, CHECK.remediation, scope.account_id
    if scope.emulated:
        return Check(id=CHECK.id, title=title, account_id=account_id, status="not_verifiable",
                     evidence=EMULATED_REASON, fix=fix)
    try:
        summary = account_summary(scope)
    except READ_ERRORS as exc:
        return unreadable(CHECK.id, title, account_id, None, exc, fix)
    mfa = int(summary.get("AccountMFAEnabled", 0))
    return Check(id=CHECK.id, title=title, account_id=account_id, status="pass" if mfa else "fail",
                 evidence=f"iam:GetAccountSummary AccountMFAEnabled={mfa}", fix="" if mfa else fix)


CHECK = ReadinessCheck(
    id="root_mfa",
    title="The root user has MFA",
    per="account",
    severity="high",
    rationale="No policy limits the root user, and it can undo any containment: MFA is what stands between a "
              "stolen root password and the whole account.",
    remediation="Enable MFA on the root user (hardware key or passkey preferred), as root, in the console.",
    permissions=ROOT_PERMISSIONS,
    run=_run,
    references=ROOT_REFERENCES,
    attack=("T1078.004",),
    cis=("1.5",),
)
