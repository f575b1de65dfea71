"""Turn on Object Lock, with a default GOVERNANCE retention, on the trail bucket (versioning first).

Target: `Target(kind="bucket", id=<bucket>, region=<home>, data={"mode": "GOVERNANCE", "days": 365})`.
Done when Object Lock is enabled with a default retention. S3 allows Object Lock on an existing bucket
once versioning is on; neither can be switched off again, so this action has no undo and asks for approval.
GOVERNANCE (not COMPLIANCE) lets a principal with s3:BypassGovernanceRetention still fix a mistake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code


class EnableBucketObjectLock(Action):
    name: ClassVar[str] = "enable_bucket_object_lock"
    summary: ClassVar[str] = "Turn on versioning and Object Lock with a default retention on the trail bucket."
    permissions: ClassVar[tuple[str, ...]] = (
        "s3:GetBucketVersioning", "s3:PutBucketVersioning",
        "s3:GetBucketObjectLockConfiguration", "s3:PutBucketObjectLockConfiguration",
    )
    requires_approval: ClassVar[bool] = True
    undo_unsupported_reason: ClassVar[str | None] = (
        "S3 cannot turn Object Lock (or versioning) off again once enabled; shorten the default retention by hand")
    target_kinds: ClassVar[tuple[str, ...]] = ("bucket",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        s3 = ctx.client("s3", target.region)
        versioning = s3.get_bucket_versioning(Bucket=target.id).get("Status") or "Off"
        try:
            config = s3.get_object_lock_configuration(Bucket=target.id)["ObjectLockConfiguration"]
        except ClientError as exc:
            if error_code(exc) != "ObjectLockConfigurationNotFoundError":
                raise
            return {"versioning": versioning, "object_lock": None}
        retention = (config.get("Rule") or {}).get("DefaultRetention") or {}
        return {"versioning": versioning, "object_lock": {
            "enabled": config.get("ObjectLockEnabled") == "Enabled", "mode": retention.get("Mode"),
            "days": retention.get("Days") or None, "years": retention.get("Years") or None}}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        lock = state["object_lock"]
        return bool(lock and lock["enabled"] and lock["mode"])

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return (f"turn on versioning and Object Lock on bucket {target.id}, default {target.data['mode']} retention "
                f"{target.data['days']} days (irreversible)")

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        s3 = ctx.client("s3", target.region)
        if before["versioning"] != "Enabled":
            s3.put_bucket_versioning(Bucket=target.id, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object_lock_configuration(Bucket=target.id, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": str(target.data["mode"]), "Days": int(target.data["days"])}}})


ACTION = EnableBucketObjectLock()
