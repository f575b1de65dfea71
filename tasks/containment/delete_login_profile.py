"""Delete a user's console password (login profile), so a password the attacker set stops working.

Planned only when the console password is attacker persistence (see `tasks.plan`). A user without
one is done. Undo gives the user a new random password that must be reset at first sign-in; the
password goes to Secrets Manager (`keyresponse/<incident>/<user>/console-password`) and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code
from tasks.iam_changes import create_login_profile_with_secret, has_login_profile


class DeleteLoginProfile(Action):
    name: ClassVar[str] = "delete_login_profile"
    summary: ClassVar[str] = "Delete a user's console password."
    permissions: ClassVar[tuple[str, ...]] = (
        "iam:GetLoginProfile", "iam:DeleteLoginProfile", "iam:CreateLoginProfile",
        "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:TagResource",
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("user",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        return {"login_profile": has_login_profile(ctx, target.id)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return not state["login_profile"]

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"delete the console password of user {target.id}"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        try:
            ctx.client("iam").delete_login_profile(UserName=target.id)
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        if before["login_profile"]:
            create_login_profile_with_secret(ctx, target.id)


ACTION = DeleteLoginProfile()
