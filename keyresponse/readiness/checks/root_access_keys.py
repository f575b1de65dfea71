"""The root user has no access key (once per account; not verifiable on the sandbox, which has no root user)."""

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
    keys = int(summary.get("AccountAccessKeysPresent", 0))
    return Check(id=CHECK.id, title=title, account_id=account_id, status="fail" if keys else "pass",
                 evidence=f"iam:GetAccountSummary AccountAccessKeysPresent={keys}", fix=fix if keys else "")


CHECK = ReadinessCheck(
    id="root_access_keys",
    title="The root user has no access key",
    per="account",
    severity="critical",
    rationale="A root access key is the one key no IAM policy limits and no IAM API can deactivate (keyresponse "
              "can only escalate it): exposed, it is the whole account until someone signs in as root.",
    remediation="Delete the root user's access keys (as root, in the console: Security credentials).",
    permissions=ROOT_PERMISSIONS,
    run=_run,
    references=ROOT_REFERENCES,
    attack=("T1078.004",),
    cis=("1.4",),
)
