"""Give the legitimate owner a replacement access key, stored in Secrets Manager and never shown.

The key id and secret go to the secret `keyresponse/<incident>/<user>/access-key` (JSON with
`AccessKeyId` and `SecretAccessKey`); the secret's `access-key-id` tag lets plan and verify check
it without reading the value, and its resource policy (`tasks.actions.secret_policy`) denies the read
to every session issued before it was written. Nothing prints, logs or records the secret: the
ledger holds only the key id. Done when that secret exists and names a key the user has. IAM allows
two keys per user: when the user is at the limit this fails with a message saying to delete the
compromised key first (`delete_access_key`). Undo deletes the new key and the secret.

The key exists before its secret is stored, and its secret key is shown only once, by the call that
creates it. So the write records the key in the ledger as soon as it exists (before the store), and
when the store fails it deletes the key again and records that too (an `undo` of the first entry):
no key is left Active with its secret lost. Should the process die between the two, the ledger
names the key, and the next apply on the target deletes a key the ledger holds, the secret does not
name and nobody ever used (`_discard_unstored`) before making a new one: a rerun never runs into
IAM's two-key limit on a key nobody can use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError

from keyresponse.errors import AwsCallError, KeyResponseError
from keyresponse.ledger import LedgerEntry, in_effect
from tasks.actions import Action, ActionContext, Target, error_code
from tasks.iam_changes import delete_secret, secret_name, secret_tags, store_secret

KEY_TAG = "access-key-id"


class CreateReplacementAccessKey(Action):
    name: ClassVar[str] = "create_replacement_access_key"
    summary: ClassVar[str] = "Create a replacement access key for the owner, kept only in Secrets Manager."
    permissions: ClassVar[tuple[str, ...]] = (
        "iam:ListAccessKeys", "iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:GetAccessKeyLastUsed",
        "secretsmanager:DescribeSecret", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
        "secretsmanager:TagResource", "secretsmanager:PutResourcePolicy", "secretsmanager:DeleteSecret",
    )
    requires_approval: ClassVar[bool] = True
    target_kinds: ClassVar[tuple[str, ...]] = ("user",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        tags = secret_tags(ctx, secret_name(ctx, target.id, "access-key"))
        key_id = (tags or {}).get(KEY_TAG)
        if key_id is None:
            return {"replacement_key_id": None}
        return {"replacement_key_id": key_id if key_id in self._keys(ctx, target) else None}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return state["replacement_key_id"] is not None

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"create a replacement access key for user {target.id}, stored in Secrets Manager"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> LedgerEntry:
        self._discard_unstored(ctx, target)
        try:
            made = ctx.client("iam").create_access_key(UserName=target.id)["AccessKey"]
        except ClientError as exc:
            if error_code(exc) == "LimitExceeded":
                raise AwsCallError(
                    f"user {target.id} already has two access keys: delete the compromised key first "
                    "(eradication: delete_access_key), then create the replacement") from exc
            raise
        key_id = str(made["AccessKeyId"])
        entry = ctx.ledger.append(LedgerEntry(  # before the store: a crash from here on leaves the key named
            incident_id=ctx.incident_id, action=self.name, target=target.model_dump(mode="json"),
            before=dict(before), after={"replacement_key_id": key_id}, flow_run_id=ctx.flow_run_id,
            account_id=ctx.account_id))
        value = json.dumps({"AccessKeyId": key_id, "SecretAccessKey": made["SecretAccessKey"]})
        try:
            store_secret(ctx, secret_name(ctx, target.id, "access-key"), value,
                         {KEY_TAG: key_id, "user-name": target.id})
        except (ClientError, BotoCoreError, KeyResponseError) as exc:
            self._take_back(ctx, target, entry, key_id)
            raise AwsCallError(f"the secret of the new key {key_id} of user {target.id} could not be stored "
                               f"({exc}); the key was deleted again, nothing is left behind") from exc
        return entry

    def after_interruption(self, ctx: ActionContext, target: Target, intent: Mapping[str, Any]) -> str:
        """A run killed between CreateAccessKey and its ledger line left an Active key that no one has
        the secret of and the ledger does not name: each key of the user created since that run's
        intent is recorded as that run's change, then deleted and recorded as undone (as a failed
        store is), before the replacement is made afresh."""
        since = datetime.fromisoformat(str(intent["at"]).replace("Z", "+00:00")).replace(microsecond=0)
        recorded = {e.after.get("replacement_key_id") for e in ctx.ledger.entries() if e.action == self.name}
        orphans = [str(k["AccessKeyId"]) for k in
                   ctx.client("iam").list_access_keys(UserName=target.id)["AccessKeyMetadata"]
                   if k["CreateDate"].astimezone(UTC) >= since and k["AccessKeyId"] not in recorded]
        for key_id in orphans:
            entry = ctx.ledger.append(LedgerEntry(
                incident_id=ctx.incident_id, action=self.name, target=target.model_dump(mode="json"),
                before=dict(intent["before"]), after={"replacement_key_id": key_id}, flow_run_id=ctx.flow_run_id,
                account_id=ctx.account_id,
                note=f"made by a run interrupted before its ledger line (intended at {intent['at']}); its secret "
                     "was never stored"))
            self._take_back(ctx, target, entry, key_id)
        lost = f"; its key {', '.join(orphans)} was deleted (secret never stored)" if orphans else ""
        return f"an earlier run was interrupted during this change (intended at {intent['at']}){lost}"

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        current = self.read(ctx, target)["replacement_key_id"]
        if current is not None:
            self._delete_key(ctx, target, current)
        delete_secret(ctx, secret_name(ctx, target.id, "access-key"))

    # -- a key whose secret was never stored ------------------------------------------------------
    @staticmethod
    def _keys(ctx: ActionContext, target: Target) -> set[str]:
        return {str(k["AccessKeyId"]) for k in
                ctx.client("iam").list_access_keys(UserName=target.id)["AccessKeyMetadata"]}

    @staticmethod
    def _delete_key(ctx: ActionContext, target: Target, key_id: str) -> None:
        try:
            ctx.client("iam").delete_access_key(UserName=target.id, AccessKeyId=key_id)
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise

    def _take_back(self, ctx: ActionContext, target: Target, entry: LedgerEntry, key_id: str) -> None:
        """Delete the key whose secret could not be stored, and record it as the undo of `entry`."""
        try:
            self._delete_key(ctx, target, key_id)
        except (ClientError, BotoCoreError) as exc:
            raise AwsCallError(
                f"the secret of the new key {key_id} of user {target.id} could not be stored, nor the key deleted "
                f"({exc}): the ledger names it; the next run of this step, or `keyresponse undo`, deletes it") from exc
        ctx.ledger.append(LedgerEntry(
            incident_id=ctx.incident_id, kind="undo", action=self.name, target=entry.target, before=entry.after,
            after={"replacement_key_id": None}, flow_run_id=ctx.flow_run_id, account_id=ctx.account_id,
            undoes=entry.entry_id))

    def _discard_unstored(self, ctx: ActionContext, target: Target) -> None:
        """Before a new key: delete each key an earlier run of this step recorded but never stored (the
        process died between the two), so the user is not left one key short of IAM's limit. Only a key
        nobody ever used: one the owner already works with is left alone, whatever the secret says."""
        here = target.model_dump(mode="json")
        iam = ctx.client("iam")
        present = self._keys(ctx, target)
        for entry in in_effect(ctx.ledger.entries()):
            key_id = entry.after.get("replacement_key_id")
            if entry.action != self.name or entry.target != here or key_id not in present:
                continue
            if iam.get_access_key_last_used(AccessKeyId=key_id).get("AccessKeyLastUsed", {}).get("LastUsedDate"):
                continue
            self._take_back(ctx, target, entry, str(key_id))


ACTION = CreateReplacementAccessKey()
