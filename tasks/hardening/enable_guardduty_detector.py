"""Enable GuardDuty in one region: create a detector, or enable the one that is switched off.

Target: `Target(kind="region", id=<region>, region=<region>)`. Done when the region has an ENABLED
detector. Undo deletes the detector this action created, or disables again the one it enabled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tasks.actions import Action, ActionContext, Target
from tasks.hardening._common import MANAGED_TAG


def _detectors(ctx: ActionContext, region: str | None) -> dict[str, str]:
    gd = ctx.client("guardduty", region)
    ids = [d for page in gd.get_paginator("list_detectors").paginate() for d in page["DetectorIds"]]
    return {d: str(gd.get_detector(DetectorId=d)["Status"]) for d in ids}


class EnableGuarddutyDetector(Action):
    name: ClassVar[str] = "enable_guardduty_detector"
    summary: ClassVar[str] = "Enable GuardDuty in a region (create a detector, or enable a disabled one)."
    permissions: ClassVar[tuple[str, ...]] = (
        "guardduty:ListDetectors", "guardduty:GetDetector", "guardduty:CreateDetector", "guardduty:UpdateDetector",
        "guardduty:DeleteDetector", "guardduty:TagResource", "iam:CreateServiceLinkedRole",
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("region",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        statuses = set(_detectors(ctx, target.region).values())
        return {"detector": "ENABLED" if "ENABLED" in statuses else ("DISABLED" if statuses else None)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return bool(state["detector"] == "ENABLED")

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        verb = "enable the disabled GuardDuty detector" if before["detector"] else "create a GuardDuty detector"
        return f"{verb} in {target.region}"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        gd = ctx.client("guardduty", target.region)
        disabled = [d for d, status in _detectors(ctx, target.region).items() if status != "ENABLED"]
        if disabled:
            gd.update_detector(DetectorId=disabled[0], Enable=True)
        else:
            gd.create_detector(Enable=True, FindingPublishingFrequency="FIFTEEN_MINUTES", Tags=dict(MANAGED_TAG))

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        gd = ctx.client("guardduty", target.region)
        for detector_id, status in _detectors(ctx, target.region).items():
            if before["detector"] is None:
                gd.delete_detector(DetectorId=detector_id)
            elif status == "ENABLED":
                gd.update_detector(DetectorId=detector_id, Enable=False)


ACTION = EnableGuarddutyDetector()
