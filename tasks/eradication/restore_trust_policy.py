"""Remove a trust-policy backdoor: put back the role's trust policy from before the attacker changed it.

The prior document comes with the target (`target.data["trust_policy"]`): from the investigation's
persistence entry (its `before`/`prior_policy`), or from an earlier ledger entry. Without it the
planner does not plan this action and reports the role instead: guessing which statement is the
backdoor is a human's call. Done when the current trust policy equals the prior one. Undo puts the
replaced document back (it is in the ledger).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from keyresponse.errors import InputError
from tasks.actions import Action, ActionContext, Target
from tasks.iam_changes import normalize_policy


class RestoreTrustPolicy(Action):
    name: ClassVar[str] = "restore_trust_policy"
    summary: ClassVar[str] = "Restore a role's trust policy from before the attacker changed it."
    permissions: ClassVar[tuple[str, ...]] = ("iam:GetRole", "iam:UpdateAssumeRolePolicy")
    requires_approval: ClassVar[bool] = True
    target_kinds: ClassVar[tuple[str, ...]] = ("role",)

    def _prior(self, target: Target) -> Any:
        if "trust_policy" not in target.data:
            raise InputError(f"{target.label}: restore_trust_policy needs the prior trust policy in target.data")
        return normalize_policy(target.data["trust_policy"])

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        role = ctx.client("iam").get_role(RoleName=target.id)["Role"]
        return {"trust_policy": normalize_policy(role["AssumeRolePolicyDocument"])}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return bool(state["trust_policy"] == self._prior(target))

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"restore the trust policy of role {target.id} to its state before the incident"

    def _put(self, ctx: ActionContext, target: Target, document: Any) -> None:
        ctx.client("iam").update_assume_role_policy(RoleName=target.id, PolicyDocument=json.dumps(document))

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        self._put(ctx, target, self._prior(target))

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        self._put(ctx, target, before["trust_policy"])


ACTION = RestoreTrustPolicy()
