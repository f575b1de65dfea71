"""Tag the principal with the incident id (`keyresponse-incident`), so anyone looking sees why it changed.

Done when the tag already holds this incident's id. Undo puts back the previous value, or removes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tasks.actions import Action, ActionContext, Target
from tasks.iam_changes import INCIDENT_TAG


class TagPrincipal(Action):
    name: ClassVar[str] = "tag_principal"
    summary: ClassVar[str] = "Tag the user or role with the incident id."
    permissions: ClassVar[tuple[str, ...]] = (
        "iam:ListUserTags", "iam:TagUser", "iam:UntagUser", "iam:ListRoleTags", "iam:TagRole", "iam:UntagRole",
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("user", "role")

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        iam = ctx.client("iam")
        if target.kind == "role":
            tags = iam.list_role_tags(RoleName=target.id)["Tags"]
        else:
            tags = iam.list_user_tags(UserName=target.id)["Tags"]
        return {"tag": next((t["Value"] for t in tags if t["Key"] == INCIDENT_TAG), None)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return bool(state["tag"] == ctx.incident_id)

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"tag {target.kind} {target.id} with {INCIDENT_TAG}=<incident id>"

    def _tag(self, ctx: ActionContext, target: Target, value: str) -> None:
        tags = [{"Key": INCIDENT_TAG, "Value": value}]
        if target.kind == "role":
            ctx.client("iam").tag_role(RoleName=target.id, Tags=tags)
        else:
            ctx.client("iam").tag_user(UserName=target.id, Tags=tags)

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        self._tag(ctx, target, ctx.incident_id)

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        if before["tag"] is not None:
            self._tag(ctx, target, str(before["tag"]))
        elif target.kind == "role":
            ctx.client("iam").untag_role(RoleName=target.id, TagKeys=[INCIDENT_TAG])
        else:
            ctx.client("iam").untag_user(UserName=target.id, TagKeys=[INCIDENT_TAG])


ACTION = TagPrincipal()
