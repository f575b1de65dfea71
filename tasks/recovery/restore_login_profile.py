"""Give a legitimate user back a console password (after containment removed theirs).

The new password is random, must be reset at first sign-in, and goes only to Secrets Manager
(`keyresponse/<incident>/<user>/console-password`) for the owner to collect. A user who has a
console password is done. Undo deletes the login profile again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code
from tasks.iam_changes import create_login_profile_with_secret, has_login_profile


class RestoreLoginProfile(Action):
    name: ClassVar[str] = "restore_login_profile"
    summary: ClassVar[str] = "Give a legitimate user a new console password (reset required), kept in Secrets Manager."
    permissions: ClassVar[tuple[str, ...]] = (
        "iam:GetLoginProfile", "iam:CreateLoginProfile", "iam:DeleteLoginProfile",
        "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:TagResource",
        "secretsmanager:PutResourcePolicy",
    )
    requires_approval: ClassVar[bool] = True
    target_kinds: ClassVar[tuple[str, ...]] = ("user",)
    ends: ClassVar[tuple[str, ...]] = ("delete_login_profile",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        return {"login_profile": has_login_profile(ctx, target.id)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return bool(state["login_profile"])

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"give user {target.id} a new console password (reset at first sign-in) via Secrets Manager"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        create_login_profile_with_secret(ctx, target.id)

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        if not before["login_profile"]:
            try:
                ctx.client("iam").delete_login_profile(UserName=target.id)
            except ClientError as exc:
                if error_code(exc) != "NoSuchEntity":
                    raise


ACTION = RestoreLoginProfile()
