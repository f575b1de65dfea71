"""From readiness checks to a hardening plan: ordered (action, target) steps, the notes a human must
act on, and the same plan as a CloudFormation template.

    plan = plan_hardening(checks, options, settings)
    apply_steps(ctx, plan.steps)            # the action contract: plan/apply/verify, ledger, undo
    cloudformation_template(plan, options, settings)   # the IaC form of the same plan

Only failing checks produce steps. Gaps the plan does not close by itself (long-lived keys, root
user, responder role in member accounts) and checks that could not be verified become `manual` notes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keyresponse.readiness import CHECKS, Check, ReadinessOptions
from keyresponse.readiness.routes import (
    ALERT_ROUTES,
    CONNECTION_NAME,
    DEAD_LETTER_QUEUE_NAME,
    DELIVERY_ROLE_NAME,
    ROUTES_BY_CHECK,
    AlertRoute,
    webhook_endpoint,
)
from keyresponse.settings import Settings
from tasks.actions import Step, Target
from tasks.hardening import ACTIONS, registry
from tasks.hardening.configure_trail import data_event_selectors
from tasks.hardening.create_alert_dead_letter_queue import RETENTION_SECONDS, dead_letter_policy
from tasks.hardening.create_athena_table import table_input_for
from tasks.hardening.create_webhook_delivery_role import POLICY_NAME, delivery_policy, delivery_trust_policy
from tasks.hardening.put_alert_rule import RETRY_POLICY
from tasks.hardening.put_trail_bucket_policy import trail_bucket_statements

#: The checks an action closes (their `hardened_by`); the others' gaps become manual notes.
_AUTOMATIC = {check.id for check in CHECKS if check.hardened_by}


@dataclass
class HardeningPlan:
    """The steps that close the gaps, in registry order, and what needs a human."""

    account_id: str
    home_region: str
    regions: list[str]
    steps: list[Step] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)
    #: Facts the CloudFormation template needs (trail, bucket, whether the Glue database exists …).
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, action: str, target: Target) -> None:
        step = Step(registry()[action], target)
        if all(s.label != step.label for s in self.steps):
            self.steps.append(step)

    def ordered(self) -> HardeningPlan:
        rank = {action.name: i for i, action in enumerate(ACTIONS)}
        self.steps.sort(key=lambda s: rank[s.action.name])
        return self


def plan_hardening(checks: Sequence[Check], options: ReadinessOptions, settings: Settings) -> HardeningPlan:
    """The steps that close every failing check of one account that an action can close."""
    if not checks:
        raise ValueError("no checks to plan from")
    account_id = checks[0].account_id
    home = settings.region
    regions = sorted({c.region for c in checks if c.region}, key=lambda r: (r != home, r))
    plan = HardeningPlan(account_id=account_id, home_region=home, regions=regions)
    failing = [c for c in checks if c.status == "fail"]
    by_id = {c.id: c for c in checks}

    trail_facts = (by_id.get("cloudtrail_multi_region_logging") or by_id.get("cloudtrail_data_events"))
    facts = dict(trail_facts.facts) if trail_facts else {}
    bucket = facts.get("bucket") or options.trail_bucket
    trail = str(facts.get("trail") or options.trail_name)
    trail_region = str(facts.get("trail_home_region") or home)
    plan.facts.update(trail=trail, trail_exists=bool(facts.get("trail_exists")), bucket=bucket)

    for check in failing:
        if check.id == "guardduty_enabled" and check.region:
            plan.add("enable_guardduty_detector", Target(kind="region", id=check.region, region=check.region))
        elif check.id in ("cloudtrail_multi_region_logging", "cloudtrail_data_events"):
            if not bucket:
                plan.manual.append(f"{check.label}: name the trail bucket (--trail-bucket) so the trail can be created")
                continue
            if not facts.get("trail_exists"):
                plan.add("put_trail_bucket_policy", Target(kind="bucket", id=bucket, region=home,
                                                           data={"trail": trail}))
            plan.add("configure_trail", Target(kind="trail", id=trail, region=trail_region, data={
                "bucket": bucket, "data_events": list(options.data_events)}))
        elif check.id == "trail_bucket_object_lock":
            locked = check.facts.get("bucket") or bucket
            if not locked:
                plan.manual.append(f"{check.label}: name the trail bucket (--trail-bucket) to lock it")
                continue
            plan.add("enable_bucket_object_lock", Target(kind="bucket", id=str(locked), region=home, data={
                "mode": "GOVERNANCE", "days": options.object_lock_days}))
        elif check.id == "athena_cloudtrail_table":
            if not bucket:
                plan.manual.append(f"{check.label}: name the trail bucket (--trail-bucket) to create the table over")
                continue
            plan.facts["database_exists"] = bool(check.facts.get("database_exists", True))
            plan.add("create_athena_table", Target(
                kind="glue_table", id=f"{settings.athena_database}.{settings.athena_table}", region=home,
                data={"bucket": bucket, "accounts": [account_id], "regions": regions, "logs_prefix": "AWSLogs/"}))
        elif check.id in ROUTES_BY_CHECK and check.region:
            _add_route(plan, ROUTES_BY_CHECK[check.id], check.region, options)
        elif check.id not in _AUTOMATIC:
            plan.manual.append(f"{check.label}: {check.fix}")
    for check in checks:
        if check.status == "not_verifiable":
            plan.manual.append(f"{check.label}: verify by hand — {check.evidence}")
    return plan.ordered()


def _add_route(plan: HardeningPlan, route: AlertRoute, region: str, options: ReadinessOptions) -> None:
    plan.add("create_webhook_delivery_role", Target(kind="role", id=DELIVERY_ROLE_NAME))
    plan.add("create_webhook_connection", Target(kind="connection", id=CONNECTION_NAME, region=region))
    plan.add("create_webhook_destination", Target(kind="api_destination", id=route.destination_name, region=region,
                                                  data={"endpoint": webhook_endpoint(options, route),
                                                        "connection": CONNECTION_NAME}))
    plan.add("create_alert_dead_letter_queue", Target(kind="queue", id=DEAD_LETTER_QUEUE_NAME, region=region))
    plan.add("put_alert_rule", Target(kind="event_rule", id=route.rule_name, region=region, data={
        "pattern": route.pattern, "destination": route.destination_name, "role": DELIVERY_ROLE_NAME,
        "dead_letter_queue": DEAD_LETTER_QUEUE_NAME, "description": route.description}))


# -- the same plan as CloudFormation ------------------------------------------------------------

_HOME = "IsHomeRegion"


def _logical(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-") if part)


def cloudformation_template(plan: HardeningPlan, options: ReadinessOptions, settings: Settings) -> dict[str, Any]:
    """A CloudFormation template (as data) that creates what `plan` creates.

    Deploy it as a StackSet to every region of the plan: regional resources (GuardDuty detector, the
    GuardDuty route) everywhere, account-wide ones (trail, table, role, the Health and quarantine
    routes) only where the `IsHomeRegion` condition holds.
    """
    actions = {step.action.name for step in plan.steps}
    routes = {step.target.id for step in plan.steps if step.action.name == "put_alert_rule"}
    resources: dict[str, dict[str, Any]] = {}
    not_in_template: list[str] = []
    bucket = plan.facts.get("bucket")
    trail = str(plan.facts.get("trail") or options.trail_name)

    if "enable_guardduty_detector" in actions:
        resources["GuardDutyDetector"] = {"Type": "AWS::GuardDuty::Detector", "Properties": {
            "Enable": True, "FindingPublishingFrequency": "FIFTEEN_MINUTES"}}
    if "put_trail_bucket_policy" in actions and bucket:
        resources["TrailBucketPolicy"] = {"Type": "AWS::S3::BucketPolicy", "Condition": _HOME, "Properties": {
            "Bucket": bucket, "PolicyDocument": {"Version": "2012-10-17", "Statement": trail_bucket_statements(
                bucket, plan.account_id, plan.home_region, trail)}}}
        not_in_template.append(f"AWS::S3::BucketPolicy replaces the whole policy of {bucket}: merge any existing "
                               "statements into it before deploying")
    if "enable_bucket_object_lock" in actions:
        not_in_template.append(f"Object Lock on the existing bucket {bucket}: CloudFormation can only set it on a "
                               "bucket it creates; run the enable_bucket_object_lock action (or s3api "
                               "put-bucket-versioning + put-object-lock-configuration)")
    if "configure_trail" in actions and bucket:
        selectors = data_event_selectors(list(options.data_events))["EventSelectors"] if options.data_events else []
        management = [{"ReadWriteType": "All", "IncludeManagementEvents": True}]
        trail_resource: dict[str, Any] = {"Type": "AWS::CloudTrail::Trail", "Condition": _HOME, "Properties": {
            "TrailName": trail, "S3BucketName": bucket, "IsLogging": True, "IsMultiRegionTrail": True,
            "EnableLogFileValidation": True, "IncludeGlobalServiceEvents": True,
            "EventSelectors": management + [
                {"ReadWriteType": s["ReadWriteType"], "IncludeManagementEvents": False,
                 "DataResources": s["DataResources"]} for s in selectors]}}
        if "TrailBucketPolicy" in resources:
            trail_resource["DependsOn"] = "TrailBucketPolicy"
        resources["Trail"] = trail_resource
        if plan.facts.get("trail_exists"):
            not_in_template.append(f"trail {trail} already exists: import it into the stack before deploying")
    table_step = next((s for s in plan.steps if s.action.name == "create_athena_table"), None)
    if table_step is not None:
        database = table_step.target.id.split(".", 1)[0]
        table: dict[str, Any] = {"Type": "AWS::Glue::Table", "Condition": _HOME, "Properties": {
            "CatalogId": {"Ref": "AWS::AccountId"}, "DatabaseName": database,
            "TableInput": table_input_for(table_step.target)}}
        if not plan.facts.get("database_exists", True):
            resources["GlueDatabase"] = {"Type": "AWS::Glue::Database", "Condition": _HOME, "Properties": {
                "CatalogId": {"Ref": "AWS::AccountId"}, "DatabaseInput": {"Name": database}}}
            table["DependsOn"] = "GlueDatabase"
        resources["CloudTrailTable"] = table
    if "create_webhook_delivery_role" in actions:
        resources["WebhookDeliveryRole"] = {"Type": "AWS::IAM::Role", "Condition": _HOME, "Properties": {
            "RoleName": DELIVERY_ROLE_NAME, "AssumeRolePolicyDocument": delivery_trust_policy(plan.account_id),
            "Policies": [{"PolicyName": POLICY_NAME, "PolicyDocument": delivery_policy(plan.account_id)}]}}
    if routes:
        resources["WebhookConnection"] = {"Type": "AWS::Events::Connection", "Properties": {
            "Name": CONNECTION_NAME, "AuthorizationType": "API_KEY", "AuthParameters": {"ApiKeyAuthParameters": {
                "ApiKeyName": "Authorization", "ApiKeyValue": {"Fn::Sub": "Bearer ${WebhookToken}"}}}}}
        resources["AlertDeadLetterQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": DEAD_LETTER_QUEUE_NAME, "MessageRetentionPeriod": RETENTION_SECONDS,
            "SqsManagedSseEnabled": True}}
        queue_policy = json.loads(json.dumps(dead_letter_policy("${AWS::AccountId}", "${AWS::Region}",
                                                                DEAD_LETTER_QUEUE_NAME)))
        statement = queue_policy["Statement"][0]
        statement["Resource"] = {"Fn::GetAtt": ["AlertDeadLetterQueue", "Arn"]}
        statement["Condition"]["ArnLike"]["aws:SourceArn"] = {
            "Fn::Sub": statement["Condition"]["ArnLike"]["aws:SourceArn"]}
        resources["AlertDeadLetterQueuePolicy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [{"Ref": "AlertDeadLetterQueue"}], "PolicyDocument": queue_policy}}
    for route in ALERT_ROUTES:
        if route.rule_name not in routes:
            continue
        condition = {"Condition": _HOME} if route.home_only else {}
        destination = _logical(route.destination_name) + "Destination"
        resources[destination] = {"Type": "AWS::Events::ApiDestination", **condition, "Properties": {
            "Name": route.destination_name, "ConnectionArn": {"Fn::GetAtt": ["WebhookConnection", "Arn"]},
            "InvocationEndpoint": webhook_endpoint(options, route), "HttpMethod": "POST",
            "InvocationRateLimitPerSecond": 10}}
        resources[_logical(route.rule_name) + "Rule"] = {"Type": "AWS::Events::Rule", **condition, "Properties": {
            "Name": route.rule_name, "Description": route.description, "State": "ENABLED",
            "EventPattern": route.pattern, "Targets": [{
                "Id": "keyresponse-webhook", "Arn": {"Fn::GetAtt": [destination, "Arn"]},
                "RoleArn": {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{DELIVERY_ROLE_NAME}"},
                "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["AlertDeadLetterQueue", "Arn"]}},
                "RetryPolicy": dict(RETRY_POLICY)}]}}

    template: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"keyresponse readiness hardening for account {plan.account_id} (deploy as a StackSet "
                       f"to {', '.join(plan.regions) or plan.home_region})",
        "Metadata": {"keyresponse": {"generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                     "home_region": plan.home_region, "regions": plan.regions,
                                     "not_in_template": not_in_template, "manual": plan.manual}},
        "Parameters": {"HomeRegion": {"Type": "String", "Default": plan.home_region,
                                      "Description": "The region of account-wide resources (trail, table, role)."}},
        "Conditions": {_HOME: {"Fn::Equals": [{"Ref": "AWS::Region"}, {"Ref": "HomeRegion"}]}},
        "Resources": resources or {"NothingToDo": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
    }
    if routes:
        template["Parameters"]["WebhookToken"] = {
            "Type": "String", "NoEcho": True, "MinLength": 16,
            "Description": "Bearer token of the EventBridge connection: the receiver's "
                           "KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN."}
    return template
