"""What the two root-user checks share: one read of the account summary, and why the sandbox cannot tell."""

from __future__ import annotations

from keyresponse.readiness.checks._common import unreadable
from keyresponse.readiness.model import Check
from keyresponse.readiness.unit import READ_ERRORS, ReadinessCheck, Scope

ROOT_PERMISSIONS = ("iam:GetAccountSummary",)
ROOT_REFERENCES = ("https://docs.aws.amazon.com/IAM/latest/UserGuide/root-user-best-practices.html",)
EMULATED_REASON = ("not verifiable here: the sandbox (moto) has no root user; its get_account_summary answers "
                   "AccountAccessKeysPresent=0 and AccountMFAEnabled=0 for every account")


def account_summary(scope: Scope) -> dict[str, int]:
    """`iam:GetAccountSummary`'s SummaryMap, read once per scope."""
    return scope.memo("account_summary", lambda: dict(scope.clients("iam").get_account_summary()["SummaryMap"]))


def summary_check(unit: ReadinessCheck, scope: Scope, field: str, *, passes_when_set: bool) -> Check:
    """One root check over the account summary: `field` read as a count, passing when it is set (MFA
    enabled) or when it is not (access keys present); not verifiable on the sandbox."""
    title, fix, account_id = unit.title, unit.remediation, scope.account_id
    if scope.emulated:
        return Check(id=unit.id, title=title, account_id=account_id, status="not_verifiable",
                     evidence=EMULATED_REASON, fix=fix)
    try:
        summary = account_summary(scope)
    except READ_ERRORS as exc:
        return unreadable(unit.id, title, account_id, None, exc, fix)
    value = int(summary.get(field, 0))
    passed = bool(value) == passes_when_set
    return Check(id=unit.id, title=title, account_id=account_id, status="pass" if passed else "fail",
                 evidence=f"iam:GetAccountSummary {field}={value}", fix="" if passed else fix)
