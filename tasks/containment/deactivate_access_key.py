"""Deactivate exactly one access key: the compromised key, or a key derived from it.

Never all keys of the user: the owner's other key keeps their workload running while the
compromised one stops. A key that is already Inactive, or gone, is done. Undo sets it Active again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code


def key_status(ctx: ActionContext, target: Target) -> str:
    """Active, Inactive, or Absent (no such key on the user, or no such user)."""
    if not target.user_name:
        raise ValueError(f"{target.label}: an access key target needs its user_name")
    try:
        keys = ctx.client("iam").list_access_keys(UserName=target.user_name)["AccessKeyMetadata"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return "Absent"
        raise
    return next((str(k["Status"]) for k in keys if k["AccessKeyId"] == target.id), "Absent")


class DeactivateAccessKey(Action):
    name: ClassVar[str] = "deactivate_access_key"
    summary: ClassVar[str] = "Set one access key Inactive (never the user's other keys)."
    permissions: ClassVar[tuple[str, ...]] = ("iam:ListAccessKeys", "iam:UpdateAccessKey")
    target_kinds: ClassVar[tuple[str, ...]] = ("access_key",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        return {"status": key_status(ctx, target)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return state["status"] in ("Inactive", "Absent")

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"deactivate access key {target.id} of user {target.user_name}"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        try:
            ctx.client("iam").update_access_key(UserName=target.user_name, AccessKeyId=target.id, Status="Inactive")
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        if before["status"] == "Active":
            ctx.client("iam").update_access_key(UserName=target.user_name, AccessKeyId=target.id, Status="Active")


ACTION = DeactivateAccessKey()
