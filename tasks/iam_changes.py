"""What several actions change the same way: the incident tag, the session-revocation policy, inline
policies, console login profiles and the secrets recovery stores (Secrets Manager, `keyresponse/*` only).

The contract and the runner are `tasks/actions.py`; the actions under `tasks/containment/`,
`tasks/eradication/` and `tasks/recovery/` use these helpers inside their hooks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from tasks.actions import ActionContext, Target, error_code, now_iso

#: The tag every principal an incident touched carries (value: the incident id).
INCIDENT_TAG = "keyresponse-incident"


def revocation_policy_name(incident_id: str) -> str:
    """The inline deny policy that revokes an incident's sessions (one per incident and principal)."""
    return f"keyresponse-revoke-sessions-{incident_id}"[:128]


def revocation_policy(cutoff: str) -> dict[str, Any]:
    """AWS's "revoke active sessions" policy: deny everything to tokens issued before `cutoff`."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "KeyResponseRevokeOlderSessions", "Effect": "Deny", "Action": "*", "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff}},
        }],
    }


def normalize_policy(document: Any) -> Any:
    """A policy document as comparable data (IAM may answer with a URL-encoded JSON string)."""
    if isinstance(document, str):
        from urllib.parse import unquote

        document = json.loads(unquote(document))
    return json.loads(json.dumps(document, sort_keys=True))


def secret_name(ctx: ActionContext, user_name: str, what: str) -> str:
    """Where a credential made for `user_name` during the incident is kept in Secrets Manager."""
    return f"keyresponse/{ctx.incident_id}/{user_name}/{what}"


def secret_policy(cutoff: str) -> dict[str, Any]:
    """The resource policy of a secret keyresponse stores: no session issued before `cutoff` may read it.

    The secret is encrypted with the account's AWS-managed key (`aws/secretsmanager`), so there is no
    key policy to lean on, and whoever IAM allows `secretsmanager:GetSecretValue` could read it. Sessions
    the attacker minted before the incident was contained are the ones to fear — and recovery lifts the
    revocation policy that stopped them — so this resource policy, which needs no customer-managed
    key, denies the read to every session issued before the secret was written (a person collecting
    the new credential signs in again first); long-term keys and later sessions are left to IAM."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "KeyResponseNoOlderSessions", "Effect": "Deny", "Principal": "*",
            "Action": "secretsmanager:GetSecretValue", "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff}},
        }],
    }


def store_secret(ctx: ActionContext, name: str, value: str, tags: Mapping[str, str]) -> None:
    """Create or update a Secrets Manager secret (under `keyresponse/`, see `secret_name`) with its resource
    policy (`secret_policy`). The value is never printed, logged or recorded."""
    sm = ctx.client("secretsmanager")
    tag_list = [{"Key": k, "Value": v} for k, v in {INCIDENT_TAG: ctx.incident_id, **tags}.items()]
    try:
        sm.create_secret(Name=name, SecretString=value, Tags=tag_list)
    except ClientError as exc:
        if error_code(exc) != "ResourceExistsException":
            raise
        sm.put_secret_value(SecretId=name, SecretString=value)
        sm.tag_resource(SecretId=name, Tags=tag_list)
    sm.put_resource_policy(SecretId=name, ResourcePolicy=json.dumps(secret_policy(now_iso())))


def secret_tags(ctx: ActionContext, name: str) -> dict[str, str] | None:
    """The tags of a secret (None when it does not exist or is scheduled for deletion)."""
    try:
        described = ctx.client("secretsmanager").describe_secret(SecretId=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    if described.get("DeletedDate"):
        return None
    return {t["Key"]: t["Value"] for t in described.get("Tags", [])}


def delete_secret(ctx: ActionContext, name: str) -> None:
    try:
        ctx.client("secretsmanager").delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise


def random_password(length: int = 32) -> str:
    """A console password that satisfies any IAM password policy (all four character classes)."""
    import secrets
    import string

    alphabet = string.ascii_letters + string.digits + "!@#$%^&*()-_=+"
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if (any(c.islower() for c in password) and any(c.isupper() for c in password)
                and any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)):
            return password


def create_login_profile_with_secret(ctx: ActionContext, user_name: str) -> None:
    """Give `user_name` a console password that must be reset at first sign-in, kept in Secrets Manager.

    "Already exists" is success. The password goes only to Secrets Manager, never to a log or the ledger.
    """
    password = random_password()
    try:
        ctx.client("iam").create_login_profile(UserName=user_name, Password=password, PasswordResetRequired=True)
    except ClientError as exc:
        if error_code(exc) == "EntityAlreadyExists":
            return
        raise
    store_secret(ctx, secret_name(ctx, user_name, "console-password"), password, {"user-name": user_name})


def has_login_profile(ctx: ActionContext, user_name: str) -> bool:
    try:
        ctx.client("iam").get_login_profile(UserName=user_name)
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return False
        raise
    return True


def inline_policy(ctx: ActionContext, target: Target, policy_name: str) -> Any:
    """The normalized inline policy `policy_name` of a user or role target, or None."""
    iam = ctx.client("iam")
    try:
        if target.kind == "role":
            document = iam.get_role_policy(RoleName=target.id, PolicyName=policy_name)["PolicyDocument"]
        else:
            document = iam.get_user_policy(UserName=target.id, PolicyName=policy_name)["PolicyDocument"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise
    return normalize_policy(document)


def put_inline_policy(ctx: ActionContext, target: Target, policy_name: str, document: Any) -> None:
    iam = ctx.client("iam")
    body = json.dumps(document)
    if target.kind == "role":
        iam.put_role_policy(RoleName=target.id, PolicyName=policy_name, PolicyDocument=body)
    else:
        iam.put_user_policy(UserName=target.id, PolicyName=policy_name, PolicyDocument=body)


def delete_inline_policy(ctx: ActionContext, target: Target, policy_name: str) -> None:
    iam = ctx.client("iam")
    try:
        if target.kind == "role":
            iam.delete_role_policy(RoleName=target.id, PolicyName=policy_name)
        else:
            iam.delete_user_policy(UserName=target.id, PolicyName=policy_name)
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise


