"""Revoke every session issued before now: an inline deny on `aws:TokenIssueTime` (DateLessThan now).

On a user it revokes the sessions of GetSessionToken and GetFederationToken; on a role, every
session of AssumeRole (the attacker's included). Long-term keys carry no token issue time, so they
are not affected — that is what `deactivate_access_key` is for. Sessions issued after the cut-off
keep working, so the legitimate owner can sign in again. One policy per incident; applying again
keeps the first cut-off. Undo deletes the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tasks.actions import Action, ActionContext, Target, now_iso
from tasks.iam_changes import (
    delete_inline_policy,
    inline_policy,
    put_inline_policy,
    revocation_policy,
    revocation_policy_name,
)


class AttachSessionRevocationPolicy(Action):
    name: ClassVar[str] = "attach_session_revocation_policy"
    summary: ClassVar[str] = "Deny every session token issued before now (inline policy on aws:TokenIssueTime)."
    permissions: ClassVar[tuple[str, ...]] = (
        "iam:GetUserPolicy", "iam:PutUserPolicy", "iam:DeleteUserPolicy",
        "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("user", "role")

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        return {"policy": inline_policy(ctx, target, revocation_policy_name(ctx.incident_id))}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return state["policy"] is not None

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"revoke the sessions of {target.kind} {target.id} issued before now (inline deny policy)"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        put_inline_policy(ctx, target, revocation_policy_name(ctx.incident_id), revocation_policy(now_iso()))

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        delete_inline_policy(ctx, target, revocation_policy_name(ctx.incident_id))


ACTION = AttachSessionRevocationPolicy()
