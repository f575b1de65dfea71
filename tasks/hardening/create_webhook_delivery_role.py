"""The IAM role EventBridge assumes to call our API destinations (events:InvokeApiDestination only).

Target: `Target(kind="role", id="keyresponse-eventbridge-webhook")`. The role trusts
events.amazonaws.com from this account only, and may invoke only the `keyresponse-*` API destinations.
Done when the role has exactly that trust policy and inline policy. Undo deletes a role this action
created, or puts the previous trust and inline policy back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code
from tasks.hardening._common import MANAGED_TAG
from tasks.iam_changes import delete_inline_policy, inline_policy, normalize_policy, put_inline_policy

POLICY_NAME = "invoke-keyresponse-api-destinations"


def delivery_trust_policy(account_id: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}}}]}


def delivery_policy(account_id: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "InvokeKeyResponseWebhook", "Effect": "Allow", "Action": "events:InvokeApiDestination",
        "Resource": f"arn:aws:events:*:{account_id}:api-destination/keyresponse-*/*"}]}


class CreateWebhookDeliveryRole(Action):
    name: ClassVar[str] = "create_webhook_delivery_role"
    summary: ClassVar[str] = "Create the role EventBridge uses to post alerts to the webhook's API destinations."
    permissions: ClassVar[tuple[str, ...]] = (
        "iam:GetRole", "iam:CreateRole", "iam:TagRole", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole",
        "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("role",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        try:
            role = ctx.client("iam").get_role(RoleName=target.id)["Role"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return {"exists": False}
            raise
        return {"exists": True, "trust": normalize_policy(role["AssumeRolePolicyDocument"]),
                "policy": inline_policy(ctx, target, POLICY_NAME)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return bool(state["exists"] and state["trust"] == normalize_policy(delivery_trust_policy(ctx.account_id))
                    and state["policy"] == normalize_policy(delivery_policy(ctx.account_id)))

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        verb = "reset the policies of" if before["exists"] else "create"
        return f"{verb} role {target.id} (EventBridge may invoke the keyresponse-* API destinations, nothing else)"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        iam = ctx.client("iam")
        trust = json.dumps(delivery_trust_policy(ctx.account_id))
        if before["exists"]:
            iam.update_assume_role_policy(RoleName=target.id, PolicyDocument=trust)
        else:
            iam.create_role(RoleName=target.id, AssumeRolePolicyDocument=trust,
                            Description="EventBridge delivers alerts to the keyresponse webhook",
                            Tags=[{"Key": k, "Value": v} for k, v in MANAGED_TAG.items()])
        put_inline_policy(ctx, target, POLICY_NAME, delivery_policy(ctx.account_id))

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        iam = ctx.client("iam")
        if not before["exists"]:
            delete_inline_policy(ctx, target, POLICY_NAME)
            iam.delete_role(RoleName=target.id)
            return
        iam.update_assume_role_policy(RoleName=target.id, PolicyDocument=json.dumps(before["trust"]))
        if before["policy"] is None:
            delete_inline_policy(ctx, target, POLICY_NAME)
        else:
            put_inline_policy(ctx, target, POLICY_NAME, before["policy"])


ACTION = CreateWebhookDeliveryRole()
