"""The responder can act in this account (once per account): it reached the account through its role,
the role exists, or this is the responder's own account and no other account is in scope."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from keyresponse.errors import KeyResponseError
from keyresponse.readiness.checks._common import error_code, unreadable
from keyresponse.readiness.model import Check
from keyresponse.readiness.unit import ReadinessCheck, Scope
from keyresponse.settings import Settings

if TYPE_CHECKING:
    from keyresponse.aws import ClientFactory


def check_responder_role(
    clients: ClientFactory, settings: Settings, account_id: str, responder_arn: str, reached_via_role: str | None
) -> Check:
    title = CHECK.title
    check_id = CHECK.id
    role = settings.response_role_name
    fix = CHECK.remediation.format(role=role)
    if reached_via_role:
        return Check(id=check_id, title=title, account_id=account_id, status="pass", fix="",
                     evidence=f"reached by assuming {reached_via_role}")
    try:
        clients("iam").get_role(RoleName=role)
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            return unreadable(check_id, title, account_id, None, exc, fix)
        if set(settings.accounts_in_scope) - {account_id}:
            return Check(id=check_id, title=title, account_id=account_id, status="fail", fix=fix,
                         evidence=f"no role {role} here, and other accounts are in scope: they cannot reach it")
        return Check(id=check_id, title=title, account_id=account_id, status="pass", fix="",
                     evidence=f"the responder's own account: it acts as {responder_arn}; the role {role} is only "
                              "assumed in member accounts, and none is in scope")
    except (BotoCoreError, KeyResponseError) as exc:
        return unreadable(check_id, title, account_id, None, exc, fix)
    return Check(id=check_id, title=title, account_id=account_id, status="pass", fix="",
                 evidence=f"role {role} exists")


def _run(scope: Scope, region: str) -> Check:
    return check_responder_role(scope.clients, scope.settings, scope.account_id, scope.responder_arn,
                                scope.reached_via_role)


CHECK = ReadinessCheck(
    id="responder_role",
    title="The responder can act in this account",
    per="account",
    severity="high",
    rationale="Containment has to happen in the account the key belongs to, within minutes: a member account "
              "without the response role (trusting the security account) turns the first step of a response into "
              "a search for someone with access.",
    # {role}: settings.response_role_name
    remediation="Create the role {role} in every member account (trusting the security account), e.g. by a "
                "CloudFormation StackSet, with the policy of `keyresponse policy`.",
    permissions=("iam:GetRole",),
    run=_run,
    references=(
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/tutorial_cross-account-with-roles.html",
        "https://docs.aws.amazon.com/whitepapers/latest/aws-security-incident-response-guide/welcome.html",
    ),
)
