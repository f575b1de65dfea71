"""An EventBridge rule that sends one kind of alert to our webhook's API destination.

Target: `Target(kind="event_rule", id=<rule name>, region=<region>, data={"pattern": {...},
"destination": <API destination name>, "role": <delivery role name>, "dead_letter_queue": <SQS queue
name>, "description": "…"})`. Done when the rule is ENABLED with that pattern and targets the
destination with the delivery role, the dead-letter queue (`create_alert_dead_letter_queue`) and the
retry policy below. Undo deletes a rule this action created, or puts the previous pattern, state and
targets back.

The target's `RetryPolicy` is EventBridge's longest (185 attempts within 24 h, written out so nobody
shortens it by accident): a receiver that is restarting, or answers 503 while the response deployment
is being registered, gets the alert again. What still cannot be delivered (a 4xx other than 429, or
24 h of failures) goes to the dead-letter queue instead of being dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code
from tasks.hardening.create_alert_dead_letter_queue import queue_arn

TARGET_ID = "keyresponse-webhook"
RETRY_POLICY = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
_TARGET_FIELDS = ("Id", "Arn", "RoleArn", "DeadLetterConfig", "RetryPolicy")


class PutAlertRule(Action):
    name: ClassVar[str] = "put_alert_rule"
    summary: ClassVar[str] = "Create the EventBridge rule that routes one kind of alert to the webhook."
    permissions: ClassVar[tuple[str, ...]] = (
        "events:DescribeRule", "events:ListTargetsByRule", "events:PutRule", "events:PutTargets",
        "events:RemoveTargets", "events:DeleteRule", "events:DescribeApiDestination", "iam:PassRole",
    )
    target_kinds: ClassVar[tuple[str, ...]] = ("event_rule",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        events = ctx.client("events", target.region)
        try:
            rule = events.describe_rule(Name=target.id)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return {"exists": False}
            raise
        targets = events.list_targets_by_rule(Rule=target.id).get("Targets", [])
        return {"exists": True, "state": rule.get("State"), "description": rule.get("Description"),
                "pattern": json.loads(rule["EventPattern"]) if rule.get("EventPattern") else None,
                "targets": sorted(({k: t[k] for k in _TARGET_FIELDS if k in t} for t in targets),
                                  key=lambda t: str(t["Id"]))}

    def _wanted_target(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        destination = ctx.client("events", target.region).describe_api_destination(Name=str(target.data["destination"]))
        return {"Id": TARGET_ID, "Arn": str(destination["ApiDestinationArn"]),
                "RoleArn": f"arn:aws:iam::{ctx.account_id}:role/{target.data['role']}",
                "DeadLetterConfig": {"Arn": queue_arn(ctx.account_id, str(target.region),
                                                      str(target.data["dead_letter_queue"]))},
                "RetryPolicy": dict(RETRY_POLICY)}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        if not (state["exists"] and state["state"] == "ENABLED" and state["pattern"] == target.data["pattern"]):
            return False
        try:
            wanted = self._wanted_target(ctx, target)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise
        return wanted in state["targets"]

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        verb = "update" if before["exists"] else "create"
        return f"{verb} rule {target.id} in {target.region}: {target.data['description']}"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        events = ctx.client("events", target.region)
        events.put_rule(Name=target.id, EventPattern=json.dumps(target.data["pattern"]), State="ENABLED",
                        Description=str(target.data["description"])[:512])
        events.put_targets(Rule=target.id, Targets=[self._wanted_target(ctx, target)])

    def revert(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        events = ctx.client("events", target.region)
        current = [t["Id"] for t in events.list_targets_by_rule(Rule=target.id).get("Targets", [])]
        previous = {t["Id"] for t in before.get("targets", [])}
        stale = [i for i in current if i not in previous]
        if stale:
            events.remove_targets(Rule=target.id, Ids=stale)
        if not before["exists"]:
            events.delete_rule(Name=target.id)
            return
        events.put_rule(Name=target.id, EventPattern=json.dumps(before["pattern"]), State=before["state"],
                        Description=before.get("description") or "")
        if before["targets"]:
            events.put_targets(Rule=target.id, Targets=list(before["targets"]))


ACTION = PutAlertRule()
