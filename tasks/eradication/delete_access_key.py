"""Delete an access key: one the attacker created, or the compromised key once it is replaced.

A key that is gone (or whose user is gone) is done. Not undoable: a deleted key's secret is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code
from tasks.containment.deactivate_access_key import key_status


class DeleteAccessKey(Action):
    name: ClassVar[str] = "delete_access_key"
    summary: ClassVar[str] = "Delete one access key."
    permissions: ClassVar[tuple[str, ...]] = ("iam:ListAccessKeys", "iam:DeleteAccessKey")
    requires_approval: ClassVar[bool] = True
    undo_unsupported_reason: ClassVar[str | None] = "a deleted access key cannot be recreated (its secret is gone)"
    target_kinds: ClassVar[tuple[str, ...]] = ("access_key",)
    ends: ClassVar[tuple[str, ...]] = ("deactivate_access_key",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        return {"status": key_status(ctx, target)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return bool(state["status"] == "Absent")

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"delete access key {target.id} of user {target.user_name} (now {before['status']})"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        try:
            ctx.client("iam").delete_access_key(UserName=target.user_name, AccessKeyId=target.id)
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise


ACTION = DeleteAccessKey()
