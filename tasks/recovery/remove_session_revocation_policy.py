"""Remove the incident's session-revocation deny policy once the owner confirms rotation.

Approval is that confirmation. A principal without the policy is done. Undo puts the same policy
(with its original cut-off) back from the ledger's before-state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tasks.actions import Action, ActionContext, Target
from tasks.iam_changes import delete_inline_policy, inline_policy, put_inline_policy, revocation_policy_name


class RemoveSessionRevocationPolicy(Action):
    name: ClassVar[str] = "remove_session_revocation_policy"
    summary: ClassVar[str] = "Remove the session-revocation deny policy after the owner confirmed rotation."
    permissions: ClassVar[tuple[str, ...]] = (
        "iam:GetUserPolicy", "iam:PutUserPolicy", "iam:DeleteUserPolicy",
        "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
    )
    requires_approval: ClassVar[bool] = True
    target_kinds: ClassVar[tuple[str, ...]] = ("user", "role")
    ends: ClassVar[tuple[str, ...]] = ("attach_session_revocation_policy",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        return {"policy": inline_policy(ctx, target, revocation_policy_name(ctx.incident_id))}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return state["policy"] is None

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"remove the session-revocation deny policy from {target.kind} {target.id}"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        delete_inline_policy(ctx, target, revocation_policy_name(ctx.incident_id))

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        put_inline_policy(ctx, target, revocation_policy_name(ctx.incident_id), before["policy"])


ACTION = RemoveSessionRevocationPolicy()
