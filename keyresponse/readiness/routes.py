"""The EventBridge routes of AWS's alerts to the webhook, and the names of what delivers them.

One place for these facts, shared by the alert-route checks (`checks/alerts_*.py`), the hardening actions
and plan (`tasks/hardening/`), its CloudFormation template, and the receiver's routes (`keyresponse/webhook.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, JsonValue

from keyresponse.readiness.model import ReadinessOptions

CONNECTION_NAME = "keyresponse-webhook"
DELIVERY_ROLE_NAME = "keyresponse-eventbridge-webhook"
#: Where EventBridge keeps an alert it could not deliver (one queue per region with an alert rule).
DEAD_LETTER_QUEUE_NAME = "keyresponse-alerts-dlq"
QUARANTINE_POLICY_PREFIX = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantine"


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


def _values(pattern: Mapping[str, JsonValue], *path: str) -> list[JsonValue]:
    node: JsonValue | Mapping[str, JsonValue] = pattern
    for key in path:
        if not isinstance(node, Mapping):
            return []
        node = node.get(key)
    return node if isinstance(node, list) else []


def _covers(values: list[JsonValue], wanted: str) -> bool:
    """Does an event-pattern value list match `wanted` (a literal, or a prefix matcher)?"""
    for value in values:
        if value == wanted:
            return True
        if isinstance(value, Mapping) and isinstance(prefix := value.get("prefix"), str) and wanted.startswith(prefix):
            return True
    return False


def route_matches(route: AlertRoute, pattern: Mapping[str, JsonValue]) -> bool:
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
