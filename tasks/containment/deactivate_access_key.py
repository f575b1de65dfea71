"""Deactivate exactly one access key: the compromised key, or a key derived from it.

Never all keys of the user: the owner's other key keeps their workload running while the
compromised one stops. A key that is already Inactive, or gone, is done. Undo sets it Active again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code


def user_keys(ctx: ActionContext, target: Target) -> list[dict[str, Any]] | None:
    """The access keys of the target key's user as IAM lists them (id, status, creation), None when
    there is no such user. One call: a user has at most two keys."""
    if not target.user_name:
        raise ValueError(f"{target.label}: an access key target needs its user_name")
    try:
        return list(ctx.client("iam").list_access_keys(UserName=target.user_name)["AccessKeyMetadata"])
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise


def status_in(keys: list[dict[str, Any]] | None, access_key_id: str) -> str:
    """Active, Inactive, or Absent (no such key in `keys`, or no such user)."""
    return next((str(k["Status"]) for k in keys or [] if k["AccessKeyId"] == access_key_id), "Absent")


def key_status(ctx: ActionContext, target: Target) -> str:
    """Active, Inactive, or Absent (no such key on the user, or no such user)."""
    return status_in(user_keys(ctx, target), target.id)


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
