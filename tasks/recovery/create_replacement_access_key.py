"""Give the legitimate owner a replacement access key, stored in Secrets Manager and never shown.

The key id and secret go to the secret `keyresponse/<incident>/<user>/access-key` (JSON with
`AccessKeyId` and `SecretAccessKey`); the secret's `access-key-id` tag lets plan and verify check
it without reading the value. Nothing prints, logs or records the secret: the ledger holds only the
key id. Done when that secret exists and names a key the user has. IAM allows two keys per user:
when the user is at the limit this fails with a message saying to delete the compromised key
first (`delete_access_key`). Undo deletes the new key and the secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from keyresponse.errors import AwsCallError
from tasks.actions import (
    Action,
    ActionContext,
    Target,
    delete_secret,
    error_code,
    secret_name,
    secret_tags,
    store_secret,
)

KEY_TAG = "access-key-id"


class CreateReplacementAccessKey(Action):
    name: ClassVar[str] = "create_replacement_access_key"
    summary: ClassVar[str] = "Create a replacement access key for the owner, kept only in Secrets Manager."
    permissions: ClassVar[tuple[str, ...]] = (
        "iam:ListAccessKeys", "iam:CreateAccessKey", "iam:DeleteAccessKey",
        "secretsmanager:DescribeSecret", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
        "secretsmanager:TagResource", "secretsmanager:DeleteSecret",
    )
    requires_approval: ClassVar[bool] = True
    target_kinds: ClassVar[tuple[str, ...]] = ("user",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        tags = secret_tags(ctx, secret_name(ctx, target.id, "access-key"))
        key_id = (tags or {}).get(KEY_TAG)
        if key_id is None:
            return {"replacement_key_id": None}
        keys = ctx.client("iam").list_access_keys(UserName=target.id)["AccessKeyMetadata"]
        return {"replacement_key_id": key_id if any(k["AccessKeyId"] == key_id for k in keys) else None}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return state["replacement_key_id"] is not None

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"create a replacement access key for user {target.id}, stored in Secrets Manager"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        try:
            made = ctx.client("iam").create_access_key(UserName=target.id)["AccessKey"]
        except ClientError as exc:
            if error_code(exc) == "LimitExceeded":
                raise AwsCallError(
                    f"user {target.id} already has two access keys: delete the compromised key first "
                    "(eradication: delete_access_key), then create the replacement") from exc
            raise
        value = json.dumps({"AccessKeyId": made["AccessKeyId"], "SecretAccessKey": made["SecretAccessKey"]})
        store_secret(ctx, secret_name(ctx, target.id, "access-key"), value,
                     {KEY_TAG: made["AccessKeyId"], "user-name": target.id})

    def after_interruption(self, ctx: ActionContext, target: Target, intent: Mapping[str, Any]) -> str:
        """A run killed between CreateAccessKey and storing its secret leaves an Active key whose secret
        no one has: delete every key of the user created since that run's intent (the replacement
        this action made is identified by the stored secret, which does not exist here), then create
        the replacement afresh."""
        since = datetime.fromisoformat(str(intent["at"]).replace("Z", "+00:00"))
        iam = ctx.client("iam")
        orphans = [k["AccessKeyId"] for k in iam.list_access_keys(UserName=target.id)["AccessKeyMetadata"]
                   if k["CreateDate"].astimezone(UTC) >= since.replace(microsecond=0)]
        for key_id in orphans:
            iam.delete_access_key(UserName=target.id, AccessKeyId=key_id)
        lost = f"; deleted its key whose secret was never stored: {', '.join(orphans)}" if orphans else ""
        return f"an earlier run was interrupted during this change (intended at {intent['at']}){lost}"

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        current = self.read(ctx, target)["replacement_key_id"]
        if current is not None:
            try:
                ctx.client("iam").delete_access_key(UserName=target.id, AccessKeyId=current)
            except ClientError as exc:
                if error_code(exc) != "NoSuchEntity":
                    raise
        delete_secret(ctx, secret_name(ctx, target.id, "access-key"))


ACTION = CreateReplacementAccessKey()
