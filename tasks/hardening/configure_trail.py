"""Create or update the trail: multi-region, log-file validation, logging, and the data events asked for.

Target: `Target(kind="trail", id=<name>, region=<trail home region>, data={"bucket": <bucket>,
"data_events": ["AWS::S3::Object", "AWS::Lambda::Function"]})`. An existing trail keeps its bucket and
its selectors; the missing data-event types are added (advanced selectors when the trail uses them).
Undo deletes a trail this action created, or puts back the previous settings, selectors and logging.
Data events are billed per event: the plan asks for approval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from keyresponse.readiness.trails import event_selector_types
from tasks.actions import Action, ActionContext, Target, error_code
from tasks.hardening._common import MANAGED_TAG

#: "All resources of this type" for basic event selectors.
ALL_RESOURCES = {"AWS::S3::Object": "arn:aws:s3", "AWS::Lambda::Function": "arn:aws:lambda"}
_DEFAULT_SELECTORS = [{"ReadWriteType": "All", "IncludeManagementEvents": True, "DataResources": [],
                       "ExcludeManagementEventSources": []}]


def _basic(selector: Mapping[str, Any]) -> dict[str, Any]:
    return {"ReadWriteType": selector.get("ReadWriteType", "All"),
            "IncludeManagementEvents": bool(selector.get("IncludeManagementEvents", True)),
            "DataResources": [{"Type": r["Type"], "Values": sorted(r.get("Values") or [])}
                              for r in selector.get("DataResources") or []],
            "ExcludeManagementEventSources": sorted(selector.get("ExcludeManagementEventSources") or [])}


def _selectors(answer: Mapping[str, Any]) -> dict[str, Any]:
    """Event selectors as comparable data; no selectors at all means CloudTrail's default (management events)."""
    advanced = list(answer.get("AdvancedEventSelectors") or [])
    basic = [_basic(s) for s in answer.get("EventSelectors") or []]
    if not basic and not advanced:
        basic = [dict(s) for s in _DEFAULT_SELECTORS]
    return {"EventSelectors": basic, "AdvancedEventSelectors": advanced}


def data_event_selectors(types: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The selectors that add `types` (both forms; the action uses the one the trail already uses)."""
    return {
        "EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": False, "ExcludeManagementEventSources": [],
                            "DataResources": [{"Type": t, "Values": [ALL_RESOURCES[t]]} for t in types]}],
        "AdvancedEventSelectors": [{"Name": f"keyresponse data events {t}", "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "resources.type", "Equals": [t]}]}
            for t in types],
    }


class ConfigureTrail(Action):
    name: ClassVar[str] = "configure_trail"
    summary: ClassVar[str] = "Create or update the trail: multi-region, log-file validation, logging, data events."
    permissions: ClassVar[tuple[str, ...]] = (
        "cloudtrail:GetTrail", "cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors", "cloudtrail:CreateTrail",
        "cloudtrail:UpdateTrail", "cloudtrail:PutEventSelectors", "cloudtrail:StartLogging",
        "cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "cloudtrail:AddTags",
    )
    requires_approval: ClassVar[bool] = True
    target_kinds: ClassVar[tuple[str, ...]] = ("trail",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        ct = ctx.client("cloudtrail", target.region)
        try:
            trail = ct.get_trail(Name=target.id)["Trail"]
        except ClientError as exc:
            if error_code(exc) == "TrailNotFoundException":
                return {"exists": False}
            raise
        return {
            "exists": True, "bucket": trail.get("S3BucketName"),
            "multi_region": bool(trail.get("IsMultiRegionTrail")),
            "log_file_validation": bool(trail.get("LogFileValidationEnabled")),
            "global_events": bool(trail.get("IncludeGlobalServiceEvents")),
            "logging": bool(ct.get_trail_status(Name=target.id).get("IsLogging")),
            "selectors": _selectors(ct.get_event_selectors(TrailName=target.id)),
        }

    def _missing_types(self, target: Target, state: Mapping[str, Any]) -> list[str]:
        have = event_selector_types(state["selectors"]) if state.get("exists") else set()
        return [t for t in target.data.get("data_events") or [] if t not in have]

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return bool(state["exists"] and state["multi_region"] and state["log_file_validation"] and state["logging"]
                    and not self._missing_types(target, state))

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        missing = self._missing_types(target, before)
        events = f", recording data events {', '.join(missing)}" if missing else ""
        if not before["exists"]:
            return (f"create trail {target.id} (multi-region, log-file validation) to bucket "
                    f"{target.data['bucket']} and start logging{events}")
        return f"update trail {target.id}: multi-region, log-file validation, logging{events}"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        ct = ctx.client("cloudtrail", target.region)
        if not before["exists"]:
            ct.create_trail(Name=target.id, S3BucketName=str(target.data["bucket"]), IsMultiRegionTrail=True,
                            EnableLogFileValidation=True, IncludeGlobalServiceEvents=True,
                            TagsList=[{"Key": k, "Value": v} for k, v in MANAGED_TAG.items()])
            selectors = _selectors({})
        else:
            if not (before["multi_region"] and before["log_file_validation"]):
                ct.update_trail(Name=target.id, IsMultiRegionTrail=True, EnableLogFileValidation=True,
                                IncludeGlobalServiceEvents=True)
            selectors = before["selectors"]
        missing = self._missing_types(target, before)
        if missing:
            added = data_event_selectors(missing)
            if selectors["AdvancedEventSelectors"]:
                ct.put_event_selectors(TrailName=target.id, AdvancedEventSelectors=[
                    *selectors["AdvancedEventSelectors"], *added["AdvancedEventSelectors"]])
            else:
                ct.put_event_selectors(TrailName=target.id, EventSelectors=[
                    *selectors["EventSelectors"], *added["EventSelectors"]])
        if not before.get("logging"):
            ct.start_logging(Name=target.id)

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        ct = ctx.client("cloudtrail", target.region)
        if not before["exists"]:
            ct.stop_logging(Name=target.id)
            ct.delete_trail(Name=target.id)
            return
        ct.update_trail(Name=target.id, IsMultiRegionTrail=before["multi_region"],
                        EnableLogFileValidation=before["log_file_validation"],
                        IncludeGlobalServiceEvents=before["global_events"])
        selectors = before["selectors"]
        if selectors["AdvancedEventSelectors"]:
            ct.put_event_selectors(TrailName=target.id, AdvancedEventSelectors=selectors["AdvancedEventSelectors"])
        else:
            ct.put_event_selectors(TrailName=target.id, EventSelectors=selectors["EventSelectors"])
        if not before["logging"]:
            ct.stop_logging(Name=target.id)


ACTION = ConfigureTrail()
