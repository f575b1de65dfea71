"""The account's CloudTrail trails as the checks see them: read once per scope, judged, and the one to fix.

Shared by the trail, data-event, Object Lock and Athena checks (the last two act on the chosen trail's
bucket) and by the `configure_trail` hardening action (`event_selector_types`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict

from pydantic import JsonValue

from keyresponse.readiness.model import ReadinessOptions
from keyresponse.readiness.unit import READ_ERRORS, Scope

if TYPE_CHECKING:
    from keyresponse.aws import ClientFactory

#: The IAM actions of reading the trails (`read_trails`).
TRAIL_PERMISSIONS = ("cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors")


class Trail(TypedDict):
    """One trail as `read_trails` reads it."""

    name: str
    arn: str
    home_region: str
    bucket: str | None
    multi_region: bool
    organization: bool
    log_file_validation: bool
    logging: bool
    data_events: list[str]
    delivery_error: str | None


def _mappings(value: object) -> list[Mapping[str, object]]:
    """The objects of a JSON list (a response's list of selectors, resources or fields)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def event_selector_types(selectors: Mapping[str, object]) -> set[str]:
    """Data-event resource types a trail records, from basic or advanced event selectors."""
    types: set[str] = set()
    for selector in _mappings(selectors.get("EventSelectors")):
        for resource in _mappings(selector.get("DataResources")):
            types.add(str(resource.get("Type")))
    for selector in _mappings(selectors.get("AdvancedEventSelectors")):
        fields = {f.get("Field"): f for f in _mappings(selector.get("FieldSelectors"))}
        category = _strings(fields.get("eventCategory", {}).get("Equals"))
        if "Data" in category:
            types.update(_strings(fields.get("resources.type", {}).get("Equals")))
    return types


def read_trails(clients: ClientFactory, home: str) -> list[Trail]:
    """Every trail that applies to the home region, with its logging status and data-event types."""
    ct = clients("cloudtrail", home)
    trails: list[Trail] = []
    for trail in ct.describe_trails(includeShadowTrails=True).get("trailList", []):
        arn = trail["TrailARN"]
        trail_ct = clients("cloudtrail", trail.get("HomeRegion") or home)
        status = trail_ct.get_trail_status(Name=arn)
        selectors = trail_ct.get_event_selectors(TrailName=arn)
        trails.append({
            "name": trail["Name"], "arn": arn, "home_region": trail.get("HomeRegion") or home,
            "bucket": trail.get("S3BucketName"), "multi_region": bool(trail.get("IsMultiRegionTrail")),
            "organization": bool(trail.get("IsOrganizationTrail")),
            "log_file_validation": bool(trail.get("LogFileValidationEnabled")),
            "logging": bool(status.get("IsLogging")), "data_events": sorted(event_selector_types(selectors)),
            "delivery_error": status.get("LatestDeliveryError") or None,
        })
    return trails


def trails(scope: Scope) -> list[Trail]:
    """The scope's trails, read once (a failed read raises the same error to every check that asks)."""
    return scope.memo("trails", lambda: read_trails(scope.clients, scope.home))


def trail_gaps(trail: Trail) -> list[str]:
    gaps = []
    if not (trail["multi_region"] or trail["organization"]):
        gaps.append("single-region")
    if not trail["logging"]:
        gaps.append("not logging")
    if not trail["log_file_validation"]:
        gaps.append("no log-file validation")
    if trail.get("delivery_error"):
        gaps.append(f"delivery error {trail['delivery_error']}")
    return gaps


def good_trails(found: list[Trail]) -> list[Trail]:
    return [t for t in found if not trail_gaps(t)]


def chosen_trail(found: list[Trail], options: ReadinessOptions) -> Trail | None:
    """The trail the fix should act on: a good one, else the closest one (multi-region first), else None
    (ours, `options.trail_name`, is to be created)."""
    candidates = good_trails(found) or sorted(found, key=lambda t: (not (t["multi_region"] or t["organization"]),
                                                                    t["name"] != options.trail_name))
    return candidates[0] if candidates else None


def bucket_of(location: str | None) -> str | None:
    """The bucket of `s3://bucket/prefix` (None for a local folder or nothing)."""
    if location and location.startswith("s3://"):
        return location[5:].split("/", 1)[0] or None
    return None


def named_bucket(scope: Scope) -> str | None:
    """The trail bucket named by the options or the settings (for when no trail exists, or none is readable)."""
    return scope.options.trail_bucket or bucket_of(scope.settings.cloudtrail_logs)


def trail_facts(found: list[Trail], scope: Scope) -> dict[str, JsonValue]:
    """What the hardening plan needs of the trail checks: the trail to fix, whether it exists, its bucket."""
    chosen = chosen_trail(found, scope.options)
    return {"trail": chosen["name"] if chosen else scope.options.trail_name, "trail_exists": chosen is not None,
            "trail_home_region": chosen["home_region"] if chosen else None,
            "bucket": (chosen.get("bucket") if chosen else None) or named_bucket(scope)}


def trail_bucket(scope: Scope) -> str | None:
    """The bucket the trail writes to (the chosen trail's, else the named one)."""
    try:
        found = trails(scope)
    except READ_ERRORS:
        return named_bucket(scope)
    chosen = chosen_trail(found, scope.options)
    return (chosen.get("bucket") if chosen else None) or named_bucket(scope)
