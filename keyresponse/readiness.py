"""Readiness for the next incident: what is in place in an account, per region, and what to fix.

    checks = assess(clients, settings, ReadinessOptions(regions=["us-east-1", "eu-west-1"]))
    readiness_for_report(checks)       # [{"check", "status", "evidence", "fix"}] for the report
    plan = plan_hardening(checks, …)   # tasks.hardening: the approved actions that close the gaps

Each `Check` has an id, a status, the evidence it was judged on and the fix. The checks follow the
preparation part of AWS's credential-compromise playbook (IRP-CredCompromise, "Prepare"):

| id | per | passes when |
|---|---|---|
| `guardduty_enabled` | region | a GuardDuty detector is ENABLED |
| `cloudtrail_multi_region_logging` | account | a multi-region (or organization) trail is logging, with log-file validation |
| `cloudtrail_data_events` | account | that trail records the data events asked for (S3 objects, Lambda invocations) |
| `trail_bucket_object_lock` | account | the trail bucket has Object Lock with a default retention |
| `athena_cloudtrail_table` | account | the Glue/Athena table of the trail exists, with partition projection |
| `alerts_guardduty_findings` | region | an EventBridge rule sends GuardDuty access-key findings to our webhook (each route: through an AUTHORIZED connection, with a dead-letter queue and a retry policy on the rule's target) |
| `alerts_health_exposure` | home region | a rule sends AWS Health `AWS_RISK_CREDENTIALS_*` events to our webhook |
| `alerts_quarantine_policy` | home region | a rule sends `AttachUserPolicy` of `AWSCompromisedKeyQuarantine*` to our webhook |
| `responder_role` | account | the responder can act there (its role exists, or it is the responder's own account) |
| `root_access_keys` | account | the root user has no access key |
| `root_mfa` | account | the root user has MFA |
| `long_lived_access_keys` | account | no IAM user has an active key older than the preventive scan's limit |

Status is `pass`, `fail`, or `not_verifiable`: a fact this environment cannot show (the sandbox has
no root user; a read the responder is not allowed to make) is never reported as passing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from keyresponse import aws
from keyresponse import markdown as md
from keyresponse.errors import KeyResponseError
from keyresponse.keyscan import Check as ScanCheck
from keyresponse.keyscan import (
    Finding,
    ScanPolicy,
    ScanResult,
    apply_suppressions,
    fetch_report,
    find_findings,
    parse_credential_report,
)
from keyresponse.settings import Settings, get_settings

Status = Literal["pass", "fail", "not_verifiable"]

#: The read-only calls `assess` makes. `keyresponse policy --readiness` grants these and the hardening
#: actions' declared permissions; a test runs `assess` and every hardening action with only that policy.
PERMISSIONS: tuple[str, ...] = (
    "sts:GetCallerIdentity", "ec2:DescribeRegions",
    "guardduty:ListDetectors", "guardduty:GetDetector",
    "cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors",
    "s3:GetBucketObjectLockConfiguration", "glue:GetTable",
    "events:ListRules", "events:ListTargetsByRule", "events:DescribeApiDestination", "events:DescribeConnection",
    "iam:GetRole", "iam:GetAccountSummary", "iam:GenerateCredentialReport", "iam:GetCredentialReport",
)

#: Names of what the hardening plan creates (one place, shared by the checks, the actions and the template).
TRAIL_NAME = "keyresponse-trail"
CONNECTION_NAME = "keyresponse-webhook"
DELIVERY_ROLE_NAME = "keyresponse-eventbridge-webhook"
#: Where EventBridge keeps an alert it could not deliver (one queue per region with an alert rule).
DEAD_LETTER_QUEUE_NAME = "keyresponse-alerts-dlq"
DATA_EVENT_TYPES = ("AWS::S3::Object", "AWS::Lambda::Function")
QUARANTINE_POLICY_PREFIX = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantine"


class ReadinessOptions(BaseModel):
    """What the readiness check and the hardening plan need beyond `Settings` (candidates for settings)."""

    regions: list[str] | None = Field(
        default=None, description="Regions to check; None means every region enabled in the account.")
    webhook_url: str = Field(
        default="https://keyresponse.example.com",
        description="Base URL of the alert receiver; EventBridge posts to <webhook_url>/alerts/<source>.")
    trail_name: str = Field(default=TRAIL_NAME, description="Name of the trail the plan creates when none fits.")
    trail_bucket: str | None = Field(
        default=None, description="The trail bucket when no trail exists yet (else the trail's own bucket).")
    data_events: list[str] = Field(
        default_factory=lambda: list(DATA_EVENT_TYPES),
        description="Data event resource types the trail must record (empty: data-access answers not wanted).")
    object_lock_days: int = Field(default=365, ge=1, description="Default retention (GOVERNANCE) on the trail bucket.")
    max_key_age_days: int = Field(default=90, ge=1, description="The preventive scan's long-lived key limit.")


class Check(BaseModel):
    """One readiness fact about one account (and region, for regional checks)."""

    id: str
    title: str
    account_id: str
    region: str | None = None
    status: Status
    evidence: str
    fix: str
    #: What the hardening planner needs to close the gap (names found while checking).
    facts: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.id}@{self.region}" if self.region else self.id


# -- the alert routes ---------------------------------------------------------------------------


class AlertRoute(BaseModel):
    """One EventBridge route to the webhook: the rule's pattern and the receiver path it posts to."""

    check_id: str
    rule_name: str
    source: str  # the webhook route: /alerts/<source>
    destination_name: str
    home_only: bool
    pattern: dict[str, Any]
    description: str


ALERT_ROUTES: tuple[AlertRoute, ...] = (
    AlertRoute(
        check_id="alerts_guardduty_findings", rule_name="keyresponse-guardduty-findings", source="guardduty",
        destination_name="keyresponse-guardduty", home_only=False,
        pattern={"source": ["aws.guardduty"], "detail-type": ["GuardDuty Finding"],
                 "detail": {"resource": {"resourceType": ["AccessKey"]}}},
        description="GuardDuty findings about IAM access keys to the keyresponse webhook"),
    AlertRoute(
        check_id="alerts_health_exposure", rule_name="keyresponse-health-exposed-credentials", source="health",
        destination_name="keyresponse-health", home_only=True,
        pattern={"source": ["aws.health"], "detail-type": ["AWS Health Event"],
                 "detail": {"eventTypeCode": [{"prefix": "AWS_RISK_CREDENTIALS_"}]}},
        description="AWS Health exposed-credential events (AWS_RISK_CREDENTIALS_EXPOSED) to the keyresponse webhook"),
    AlertRoute(
        check_id="alerts_quarantine_policy", rule_name="keyresponse-quarantine-policy-attached", source="cloudtrail",
        destination_name="keyresponse-cloudtrail", home_only=True,
        pattern={"source": ["aws.iam"], "detail-type": ["AWS API Call via CloudTrail"],
                 "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": ["AttachUserPolicy"],
                            "requestParameters": {"policyArn": [{"prefix": QUARANTINE_POLICY_PREFIX}]}}},
        description="AWS attaching AWSCompromisedKeyQuarantine* to a user, to the keyresponse webhook"),
)
ROUTES_BY_CHECK = {route.check_id: route for route in ALERT_ROUTES}


def webhook_endpoint(options: ReadinessOptions, route: AlertRoute) -> str:
    return f"{options.webhook_url.rstrip('/')}/alerts/{route.source}"


def _values(pattern: Mapping[str, Any], *path: str) -> list[Any]:
    node: Any = pattern
    for key in path:
        if not isinstance(node, Mapping):
            return []
        node = node.get(key)
    return node if isinstance(node, list) else []


def _covers(values: list[Any], wanted: str) -> bool:
    """Does an event-pattern value list match `wanted` (a literal, or a prefix matcher)?"""
    for value in values:
        if value == wanted:
            return True
        if isinstance(value, Mapping) and isinstance(value.get("prefix"), str) and wanted.startswith(value["prefix"]):
            return True
    return False


def route_matches(route: AlertRoute, pattern: Mapping[str, Any]) -> bool:
    """Does a rule's pattern deliver the events `route` is about (ours, or an equivalent hand-made one)?"""
    if not _covers(_values(pattern, "source"), str(route.pattern["source"][0])):
        return False
    if route.source == "health":
        codes = _values(pattern, "detail", "eventTypeCode")
        return not codes or _covers(codes, "AWS_RISK_CREDENTIALS_EXPOSED")
    if route.source == "cloudtrail":
        if not _covers(_values(pattern, "detail", "eventName"), "AttachUserPolicy"):
            return False
        arns = _values(pattern, "detail", "requestParameters", "policyArn")
        return not arns or _covers(arns, QUARANTINE_POLICY_PREFIX + "V2")
    return True


# -- helpers ------------------------------------------------------------------------------------


class _ClientsLike:
    """An action context's `Clients`, or a plain boto3 session (one client per service and region)."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._cache: dict[tuple[str, str | None], Any] = {}

    def __call__(self, service: str, region: str | None = None) -> Any:
        if callable(self._source):
            return self._source(service, region)
        key = (service, region)
        if key not in self._cache:
            from keyresponse import aws

            self._cache[key] = aws.client(service, region=region, boto_session=self._source)
        return self._cache[key]


def is_emulated(clients: Callable[..., Any]) -> bool:
    """True when the clients talk to a local stand-in (the moto sandbox), not to AWS."""
    host = urlparse(str(clients("iam").meta.endpoint_url)).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or not host.endswith(("amazonaws.com", "amazonaws.com.cn"))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unreadable(check_id: str, title: str, account_id: str, region: str | None, exc: Exception, fix: str) -> Check:
    """A read that failed (AccessDenied, an API the environment lacks): not verifiable, never passing."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        why = f"{error.get('Code', '?')}: {error.get('Message', '')}".strip()
    else:
        why = str(exc)
    return Check(id=check_id, title=title, account_id=account_id, region=region, status="not_verifiable",
                 evidence=f"not verifiable here: the read failed ({why[:300]})", fix=fix)


def _paginate(client: Any, method: str, key: str, **kwargs: Any) -> list[Any]:
    if client.can_paginate(method):
        return [item for page in client.get_paginator(method).paginate(**kwargs) for item in page.get(key, [])]
    return list(getattr(client, method)(**kwargs).get(key, []))


def enabled_regions(clients: Callable[..., Any], home: str) -> list[str]:
    """Every region enabled in the account (home region first)."""
    found = sorted(r["RegionName"] for r in clients("ec2", home).describe_regions(AllRegions=False)["Regions"])
    return [home, *(r for r in found if r != home)]


def bucket_of(location: str | None) -> str | None:
    """The bucket of `s3://bucket/prefix` (None for a local folder or nothing)."""
    if location and location.startswith("s3://"):
        return location[5:].split("/", 1)[0] or None
    return None


# -- the checks ---------------------------------------------------------------------------------

GUARDDUTY_FIX = ("Enable GuardDuty in this region (hardening action enable_guardduty_detector; "
                 "AWS::GuardDuty::Detector in the CloudFormation template, deployed to every region by StackSet).")


def check_guardduty(clients: Callable[..., Any], account_id: str, region: str) -> Check:
    title = "GuardDuty is enabled"
    try:
        gd = clients("guardduty", region)
        detectors = _paginate(gd, "list_detectors", "DetectorIds")
        statuses = {d: gd.get_detector(DetectorId=d)["Status"] for d in detectors}
    except (ClientError, BotoCoreError, KeyResponseError) as exc:
        return _unreadable("guardduty_enabled", title, account_id, region, exc, GUARDDUTY_FIX)
    enabled = [d for d, status in statuses.items() if status == "ENABLED"]
    if enabled:
        return Check(id="guardduty_enabled", title=title, account_id=account_id, region=region, status="pass",
                     evidence=f"detector {enabled[0]} is ENABLED", fix="", facts={"detector_id": enabled[0]})
    evidence = (f"detector(s) {', '.join(f'{d} ({s})' for d, s in statuses.items())} not enabled" if statuses
                else "no GuardDuty detector in this region: findings about leaked keys are never raised")
    return Check(id="guardduty_enabled", title=title, account_id=account_id, region=region, status="fail",
                 evidence=evidence, fix=GUARDDUTY_FIX)


def event_selector_types(selectors: Mapping[str, Any]) -> set[str]:
    """Data-event resource types a trail records, from basic or advanced event selectors."""
    types: set[str] = set()
    for selector in selectors.get("EventSelectors") or []:
        for resource in selector.get("DataResources") or []:
            types.add(str(resource.get("Type")))
    for selector in selectors.get("AdvancedEventSelectors") or []:
        fields = {f.get("Field"): f for f in selector.get("FieldSelectors") or []}
        category = fields.get("eventCategory", {}).get("Equals") or []
        if "Data" in category:
            types.update(str(t) for t in fields.get("resources.type", {}).get("Equals") or [])
    return types


def _trails(clients: Callable[..., Any], home: str) -> list[dict[str, Any]]:
    """Every trail that applies to the home region, with its logging status and data-event types."""
    ct = clients("cloudtrail", home)
    trails = []
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


def _trail_gaps(trail: Mapping[str, Any]) -> list[str]:
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


TRAIL_FIX = ("Create or update the trail: multi-region, log-file validation, logging started (hardening actions "
             "put_trail_bucket_policy and configure_trail; AWS::CloudTrail::Trail and AWS::S3::BucketPolicy).")
DATA_EVENTS_FIX = ("Add data-event selectors to the trail (hardening action configure_trail; EventSelectors of "
                   "AWS::CloudTrail::Trail). Data events are billed per event: scope them to sensitive buckets "
                   "if the volume is high.")


def check_trail(
    trails: list[dict[str, Any]], options: ReadinessOptions, account_id: str
) -> tuple[Check, Check | None, dict[str, Any] | None]:
    """The trail check, the data-events check (None when not wanted) and the trail the fix should act on."""
    title = "A multi-region CloudTrail trail is logging, with log-file validation"
    good = [t for t in trails if not _trail_gaps(t)]
    # the trail to fix: a good one, else the closest one (multi-region first), else ours (to create)
    candidates = good or sorted(trails, key=lambda t: (not (t["multi_region"] or t["organization"]),
                                                      t["name"] != options.trail_name))
    chosen = candidates[0] if candidates else None
    bucket = (chosen or {}).get("bucket") or options.trail_bucket
    facts = {"trail": chosen["name"] if chosen else options.trail_name, "trail_exists": chosen is not None,
             "trail_home_region": chosen["home_region"] if chosen else None, "bucket": bucket}
    if good:
        trail_check = Check(id="cloudtrail_multi_region_logging", title=title, account_id=account_id, status="pass",
                            evidence=f"trail {good[0]['name']} is multi-region, logging, with log-file validation",
                            fix="", facts=facts)
    elif trails:
        trail_check = Check(
            id="cloudtrail_multi_region_logging", title=title, account_id=account_id, status="fail",
            evidence="; ".join(f"trail {t['name']}: {', '.join(_trail_gaps(t))}" for t in trails),
            fix=TRAIL_FIX, facts=facts)
    else:
        trail_check = Check(id="cloudtrail_multi_region_logging", title=title, account_id=account_id, status="fail",
                            evidence="no CloudTrail trail: only the 90-day event history exists (no data events, "
                                     "no Athena, no integrity proof)", fix=TRAIL_FIX, facts=facts)
    if not options.data_events:
        return trail_check, None, chosen
    wanted = set(options.data_events)
    title = f"The trail records data events ({', '.join(sorted(wanted))})"
    recording = [t for t in (good or trails) if wanted <= set(t["data_events"])]
    if recording:
        data_check = Check(id="cloudtrail_data_events", title=title, account_id=account_id, status="pass",
                           evidence=f"trail {recording[0]['name']} records {', '.join(recording[0]['data_events'])}",
                           fix="", facts=facts)
    else:
        evidence = ("no trail, so no data events: an incident cannot say which objects were read or functions invoked"
                    if not trails else "; ".join(
                        f"trail {t['name']} records {', '.join(t['data_events']) or 'no data events'}" for t in trails))
        data_check = Check(id="cloudtrail_data_events", title=title, account_id=account_id, status="fail",
                           evidence=evidence, fix=DATA_EVENTS_FIX, facts=facts)
    return trail_check, data_check, chosen


OBJECT_LOCK_FIX = ("Turn on versioning and Object Lock with a default GOVERNANCE retention on the trail bucket "
                   "(hardening action enable_bucket_object_lock; it cannot be turned off again).")


def check_object_lock(clients: Callable[..., Any], account_id: str, bucket: str | None, home: str) -> Check:
    title = "The trail bucket has Object Lock with a default retention"
    check_id = "trail_bucket_object_lock"
    if not bucket:
        return Check(id=check_id, title=title, account_id=account_id, status="fail",
                     evidence="no trail bucket is known (no trail, and no --trail-bucket / "
                              "KEYRESPONSE_CLOUDTRAIL_LOGS=s3://…)",
                     fix="Name the trail bucket, then " + OBJECT_LOCK_FIX[0].lower() + OBJECT_LOCK_FIX[1:])
    try:
        config = clients("s3", home).get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except ClientError as exc:
        if _code(exc) == "ObjectLockConfigurationNotFoundError":
            return Check(id=check_id, title=title, account_id=account_id, status="fail",
                         evidence=f"bucket {bucket} has no Object Lock: an attacker with s3:DeleteObject can erase "
                                  "the logs of the incident", fix=OBJECT_LOCK_FIX, facts={"bucket": bucket})
        return _unreadable(check_id, title, account_id, None, exc, OBJECT_LOCK_FIX)
    except (BotoCoreError, KeyResponseError) as exc:
        return _unreadable(check_id, title, account_id, None, exc, OBJECT_LOCK_FIX)
    retention = (config.get("Rule") or {}).get("DefaultRetention") or {}
    if config.get("ObjectLockEnabled") == "Enabled" and retention.get("Mode"):
        span = f"{retention.get('Days') or 0} day(s)" if retention.get("Days") else f"{retention.get('Years')} year(s)"
        return Check(id=check_id, title=title, account_id=account_id, status="pass", facts={"bucket": bucket},
                     evidence=f"bucket {bucket}: Object Lock enabled, default {retention['Mode']} retention {span}",
                     fix="")
    return Check(id=check_id, title=title, account_id=account_id, status="fail", facts={"bucket": bucket},
                 evidence=f"bucket {bucket}: Object Lock enabled but no default retention, so CloudTrail's "
                          "objects are not locked", fix=OBJECT_LOCK_FIX)


ATHENA_FIX = ("Create the CloudTrail table from queries/ddl/cloudtrail.sql, with partition projection (hardening "
              "action create_athena_table, through Glue; AWS::Glue::Table in the template).")


def check_athena_table(clients: Callable[..., Any], settings: Settings, account_id: str, home: str,
                       bucket: str | None) -> Check:
    title = "The Athena table of the trail exists, with partition projection"
    check_id = "athena_cloudtrail_table"
    name = f"{settings.athena_database}.{settings.athena_table}"
    facts: dict[str, Any] = {"database": settings.athena_database, "table": settings.athena_table, "bucket": bucket}
    try:
        table = clients("glue", home).get_table(DatabaseName=settings.athena_database,
                                                Name=settings.athena_table)["Table"]
    except ClientError as exc:
        if _code(exc) == "EntityNotFoundException":
            facts["database_exists"] = "database" not in str(exc).lower()
            return Check(id=check_id, title=title, account_id=account_id, status="fail", facts=facts,
                         evidence=f"no table {name} in the Glue catalog of {home}: Athena cannot scope an incident",
                         fix=ATHENA_FIX)
        return _unreadable(check_id, title, account_id, None, exc, ATHENA_FIX)
    except (BotoCoreError, KeyResponseError) as exc:
        return _unreadable(check_id, title, account_id, None, exc, ATHENA_FIX)
    parameters = table.get("Parameters") or {}
    location = str((table.get("StorageDescriptor") or {}).get("Location") or "")
    gaps = []
    if parameters.get("projection.enabled") != "true":
        gaps.append("no partition projection (every query lists S3 and scans every partition)")
    if bucket and not location.startswith(f"s3://{bucket}/"):
        gaps.append(f"its location {location or '(none)'} is not the trail bucket {bucket}")
    if gaps:
        return Check(id=check_id, title=title, account_id=account_id, status="fail", facts=facts,
                     evidence=f"table {name}: " + "; ".join(gaps), fix=ATHENA_FIX)
    return Check(id=check_id, title=title, account_id=account_id, status="pass", facts=facts,
                 evidence=f"table {name} over {location}, partition projection on", fix="")


def _route_fix(route: AlertRoute) -> str:
    return (f"Create the EventBridge rule {route.rule_name} with an API destination to the webhook, a dead-letter "
            "queue and a retry policy (hardening actions create_webhook_delivery_role, create_webhook_connection, "
            "create_webhook_destination, create_alert_dead_letter_queue, put_alert_rule; AWS::Events::Rule, "
            "AWS::Events::Connection, AWS::Events::ApiDestination, AWS::SQS::Queue).")


def check_alert_route(
    clients: Callable[..., Any], options: ReadinessOptions, route: AlertRoute, account_id: str, region: str
) -> Check:
    title = route.description[0].upper() + route.description[1:]
    endpoint = webhook_endpoint(options, route)
    try:
        events = clients("events", region)
        rules = _paginate(events, "list_rules", "Rules")
        matching = [r for r in rules if r.get("EventPattern") and route_matches(route, json.loads(r["EventPattern"]))]
        seen: list[str] = []
        for rule in matching:
            if rule.get("State") != "ENABLED":
                seen.append(f"rule {rule['Name']} is {rule.get('State')}")
                continue
            targets = _paginate(events, "list_targets_by_rule", "Targets", Rule=rule["Name"])
            for target in targets:
                if ":api-destination/" not in target["Arn"]:
                    seen.append(f"rule {rule['Name']} targets {target['Arn']}")
                    continue
                name = target["Arn"].split(":api-destination/", 1)[1].split("/", 1)[0]
                destination = events.describe_api_destination(Name=name)
                if destination.get("InvocationEndpoint") != endpoint:
                    seen.append(f"rule {rule['Name']} posts to {destination.get('InvocationEndpoint')}")
                    continue
                connection_name = str(destination["ConnectionArn"]).split(":connection/", 1)[1].split("/", 1)[0]
                state = events.describe_connection(Name=connection_name).get("ConnectionState")
                if state != "AUTHORIZED":
                    seen.append(f"connection {connection_name} is {state}")
                    continue
                if not (target.get("DeadLetterConfig") or {}).get("Arn") or not target.get("RetryPolicy"):
                    seen.append(f"rule {rule['Name']} delivers to {endpoint} without a dead-letter queue and retry "
                                "policy: an alert the receiver refuses or misses is lost")
                    continue
                return Check(id=route.check_id, title=title, account_id=account_id, region=region, status="pass",
                             evidence=f"rule {rule['Name']} -> API destination {name} -> {endpoint}", fix="")
            if not targets:
                seen.append(f"rule {rule['Name']} has no target")
    except (ClientError, BotoCoreError, KeyResponseError) as exc:
        return _unreadable(route.check_id, title, account_id, region, exc, _route_fix(route))
    evidence = "; ".join(seen) if seen else f"no EventBridge rule routes these events in {region}"
    return Check(id=route.check_id, title=title, account_id=account_id, region=region, status="fail",
                 evidence=f"{evidence} (expected a route to {endpoint})", fix=_route_fix(route))


def check_responder_role(
    clients: Callable[..., Any], settings: Settings, account_id: str, responder_arn: str, reached_via_role: str | None
) -> Check:
    title = "The responder can act in this account"
    check_id = "responder_role"
    role = settings.response_role_name
    fix = (f"Create the role {role} in every member account (trusting the security account), e.g. by a "
           "CloudFormation StackSet, with the policy of `keyresponse policy`.")
    if reached_via_role:
        return Check(id=check_id, title=title, account_id=account_id, status="pass", fix="",
                     evidence=f"reached by assuming {reached_via_role}")
    try:
        clients("iam").get_role(RoleName=role)
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            return _unreadable(check_id, title, account_id, None, exc, fix)
        if set(settings.accounts_in_scope) - {account_id}:
            return Check(id=check_id, title=title, account_id=account_id, status="fail", fix=fix,
                         evidence=f"no role {role} here, and other accounts are in scope: they cannot reach it")
        return Check(id=check_id, title=title, account_id=account_id, status="pass", fix="",
                     evidence=f"the responder's own account: it acts as {responder_arn}; the role {role} is only "
                              "assumed in member accounts, and none is in scope")
    except (BotoCoreError, KeyResponseError) as exc:
        return _unreadable(check_id, title, account_id, None, exc, fix)
    return Check(id=check_id, title=title, account_id=account_id, status="pass", fix="",
                 evidence=f"role {role} exists")


def check_root(clients: Callable[..., Any], account_id: str, emulated: bool) -> list[Check]:
    keys_title, mfa_title = "The root user has no access key", "The root user has MFA"
    keys_fix = "Delete the root user's access keys (as root, in the console: Security credentials)."
    mfa_fix = "Enable MFA on the root user (hardware key or passkey preferred), as root, in the console."
    if emulated:
        reason = ("not verifiable here: the sandbox (moto) has no root user; its get_account_summary answers "
                  "AccountAccessKeysPresent=0 and AccountMFAEnabled=0 for every account")
        return [Check(id="root_access_keys", title=keys_title, account_id=account_id, status="not_verifiable",
                      evidence=reason, fix=keys_fix),
                Check(id="root_mfa", title=mfa_title, account_id=account_id, status="not_verifiable",
                      evidence=reason, fix=mfa_fix)]
    try:
        summary = clients("iam").get_account_summary()["SummaryMap"]
    except (ClientError, BotoCoreError, KeyResponseError) as exc:
        return [_unreadable("root_access_keys", keys_title, account_id, None, exc, keys_fix),
                _unreadable("root_mfa", mfa_title, account_id, None, exc, mfa_fix)]
    keys = int(summary.get("AccountAccessKeysPresent", 0))
    mfa = int(summary.get("AccountMFAEnabled", 0))
    return [
        Check(id="root_access_keys", title=keys_title, account_id=account_id, status="fail" if keys else "pass",
              evidence=f"iam:GetAccountSummary AccountAccessKeysPresent={keys}", fix=keys_fix if keys else ""),
        Check(id="root_mfa", title=mfa_title, account_id=account_id, status="pass" if mfa else "fail",
              evidence=f"iam:GetAccountSummary AccountMFAEnabled={mfa}", fix="" if mfa else mfa_fix),
    ]


LONG_LIVED_FIX = ("Move these workloads to roles (IAM Identity Center, IAM Roles Anywhere, instance or task roles); "
                  "until then rotate the keys. The preventive_key_scan flow (remediate=true) notifies the owners and "
                  "deactivates keys after their grace period, with approval. Not part of the automatic hardening.")


def long_lived_findings(
    clients: Callable[..., Any], settings: Settings, account_id: str, max_age_days: int
) -> list[Finding]:
    """The preventive scan's `long_lived` findings for one account (protected principals left out)."""
    policy = ScanPolicy(max_age_days=max_age_days, protected_principals=list(settings.protected_principals))
    report = fetch_report(clients("iam"), account_id, timeout_s=60, poll_s=0.2)
    now = datetime.now(UTC)
    findings = find_findings(parse_credential_report(report.content, account_id=account_id), policy, now)
    kept, _, _ = apply_suppressions(findings, protected=policy.protected_principals, exceptions=(), today=now.date())
    return kept


def check_long_lived_keys(findings: Sequence[Finding], account_id: str, max_age_days: int) -> Check:
    title = f"No IAM user has an active access key older than {max_age_days} days"
    long_lived = sorted((f for f in findings if f.check == ScanCheck.LONG_LIVED and f.account_id == account_id),
                        key=lambda f: (-(f.age_days or 0), f.user_name))
    users = sorted({f.user_name for f in long_lived})
    if not long_lived:
        return Check(id="long_lived_access_keys", title=title, account_id=account_id, status="pass", fix="",
                     evidence=f"the preventive scan finds no active key older than {max_age_days} days")
    detail = ", ".join(f"{f.user_name} ({f.age_days} d)" for f in long_lived)
    return Check(id="long_lived_access_keys", title=title, account_id=account_id, status="fail",
                 evidence=f"{len(users)} user(s) with long-lived keys: {detail}", fix=LONG_LIVED_FIX,
                 facts={"users": users})


# -- the whole assessment -----------------------------------------------------------------------


def assess(
    clients: Any = None,
    settings: Settings | None = None,
    options: ReadinessOptions | None = None,
    *,
    scan: ScanResult | None = None,
    emulated: bool | None = None,
    reached_via_role: str | None = None,
) -> list[Check]:
    """Every readiness check for the account `clients` act in (read-only).

    `clients` is a `tasks.actions.Clients`, a boto3 `Session`, or None (the default credential chain).
    `scan` reuses a preventive scan's result instead of fetching the credential report again.
    `emulated` (default: detected from the endpoint) marks facts the sandbox cannot show as not verifiable.
    """
    settings = settings or get_settings()
    options = options or ReadinessOptions()
    source = clients if clients is not None else aws.session(region=settings.region)
    call = _ClientsLike(source)
    home = settings.region
    emulated = is_emulated(call) if emulated is None else emulated
    identity = call("sts").get_caller_identity()
    account_id = str(identity["Account"])
    regions = list(options.regions) if options.regions else enabled_regions(call, home)
    if home not in regions:
        regions.insert(0, home)

    checks: list[Check] = [check_guardduty(call, account_id, region) for region in regions]
    try:
        trails = _trails(call, home)
    except (ClientError, BotoCoreError, KeyResponseError) as exc:
        checks.append(_unreadable("cloudtrail_multi_region_logging", "A multi-region trail is logging",
                                  account_id, None, exc, TRAIL_FIX))
        trail_bucket = options.trail_bucket or bucket_of(settings.cloudtrail_logs)
    else:
        trail_check, data_check, chosen = check_trail(trails, options.model_copy(update={
            "trail_bucket": options.trail_bucket or bucket_of(settings.cloudtrail_logs)}), account_id)
        checks.append(trail_check)
        if data_check is not None:
            checks.append(data_check)
        trail_bucket = (chosen or {}).get("bucket") or options.trail_bucket or bucket_of(settings.cloudtrail_logs)
    checks.append(check_object_lock(call, account_id, trail_bucket, home))
    checks.append(check_athena_table(call, settings, account_id, home, trail_bucket))
    for route in ALERT_ROUTES:
        for region in ([home] if route.home_only else regions):
            checks.append(check_alert_route(call, options, route, account_id, region))
    checks.append(check_responder_role(call, settings, account_id, str(identity["Arn"]), reached_via_role))
    checks.extend(check_root(call, account_id, emulated))
    if scan is not None and any(a.account_id == account_id and a.status == "ok" for a in scan.accounts):
        findings: Sequence[Finding] = scan.findings
        max_age = scan.policy.max_age_days
    else:
        max_age = options.max_key_age_days
        try:
            findings = long_lived_findings(call, settings, account_id, max_age)
        except (ClientError, BotoCoreError, KeyResponseError) as exc:
            checks.append(_unreadable("long_lived_access_keys", "No IAM user has a long-lived access key",
                                      account_id, None, exc, LONG_LIVED_FIX))
            return checks
    checks.append(check_long_lived_keys(findings, account_id, max_age))
    return checks


# -- output -------------------------------------------------------------------------------------


def readiness_for_report(checks: Iterable[Check]) -> list[dict[str, str]]:
    """For the post-incident report's recommendations: every check that is not passing, gaps first."""
    order = {"fail": 0, "not_verifiable": 1, "pass": 2}
    rows = sorted((c for c in checks if c.status != "pass"), key=lambda c: (order[c.status], c.account_id, c.label))
    return [{"check": f"{c.label} ({c.account_id})" if c.account_id else c.label, "status": c.status,
             "evidence": c.evidence, "fix": c.fix} for c in rows]


def summary(checks: Sequence[Check]) -> dict[str, int]:
    return {status: sum(1 for c in checks if c.status == status) for status in ("pass", "fail", "not_verifiable")}


def to_json(checks: Sequence[Check]) -> dict[str, Any]:
    """The JSON of `keyresponse readiness --json`."""
    return {"summary": summary(checks),
            "checks": [c.model_dump(mode="json", exclude={"facts"}) for c in checks]}


def render_markdown(checks: Sequence[Check]) -> str:
    """A table for a Prefect artifact or a terminal; the evidence quotes the account (trail, bucket and rule
    names), so every cell goes through keyresponse.markdown."""
    mark = {"pass": "pass", "fail": "**FAIL**", "not_verifiable": "not verifiable here"}
    counts = summary(checks)
    lines = [f"# Readiness — {counts['pass']} pass, {counts['fail']} fail, "
             f"{counts['not_verifiable']} not verifiable", "",
             md.table(["check", "account", "region", "status", "evidence", "fix"],
                      [[md.code(c.id), md.code(c.account_id), c.region or "", md.Markdown(mark[c.status]), c.evidence,
                        c.fix] for c in checks])]
    return "\n".join(lines) + "\n"
