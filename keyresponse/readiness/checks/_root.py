"""What the two root-user checks share: one read of the account summary, and why the sandbox cannot tell."""

from __future__ import annotations

from keyresponse.readiness.unit import Scope

ROOT_PERMISSIONS = ("iam:GetAccountSummary",)
ROOT_REFERENCES = ("https://docs.aws.amazon.com/IAM/latest/UserGuide/root-user-best-practices.html",)
EMULATED_REASON = ("not verifiable here: the sandbox (moto) has no root user; its get_account_summary answers "
                   "AccountAccessKeysPresent=0 and AccountMFAEnabled=0 for every account")


def account_summary(scope: Scope) -> dict[str, int]:
    """`iam:GetAccountSummary`'s SummaryMap, read once per scope."""
    return scope.memo("account_summary", lambda: dict(scope.clients("iam").get_account_summary()["SummaryMap"]))
